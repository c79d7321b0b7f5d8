"""`<ds>/features`, `<ds>/candidates` and `<ds>/champion_model`."""

import json
from datetime import UTC, datetime

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AutomationCondition,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
)

from mlops_assets.defs.ingestion.assets import POOL
from mlops_assets.defs.resources import MlflowTracking, ModelStore, Warehouse
from mlops_assets.defs.training.champion import promote_best
from mlops_assets.defs.training.checks import champion_check_specs
from mlops_assets.lib import features as feature_lib
from mlops_assets.lib import registry, training
from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.warehouse import replace_table, table

EAGER = AutomationCondition.eager()


def read_features(warehouse: Warehouse, spec: DatasetSpec) -> pd.DataFrame:
    with warehouse.get_connection() as con:
        return con.execute(f"SELECT * FROM {table(spec.name, 'features')}").df()


def training_assets(spec: DatasetSpec) -> list:
    ds = spec.name

    @asset(
        key=AssetKey([ds, "features"]),
        deps=[AssetKey([ds, "validated"])],
        group_name=ds,
        pool=POOL,
        kinds={"duckdb"},
        automation_condition=EAGER,
        description=f"Model inputs and target of every validated row, split train/test ({ds}).",
    )
    def features(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
        with warehouse.get_connection() as con:
            try:
                rows = feature_lib.query_features(con, spec)
            except feature_lib.DerivedColumnError as exc:
                raise Failure(description=f"{ds}: {exc}") from None
            frame, without_target = feature_lib.build_feature_set(rows, spec)
            replace_table(con, ds, "features", frame)
        counts = frame["_split"].value_counts()
        version = feature_lib.data_version(frame)
        return MaterializeResult(
            metadata={
                "train_rows": int(counts.get("train", 0)),
                "test_rows": int(counts.get("test", 0)),
                "rows_without_target": without_target,
                "split": MetadataValue.json(spec.split.model_dump()),
                "data_version": version,
                "dagster/column_schema": TableSchema(
                    columns=[TableColumn(name, str(dtype)) for name, dtype in frame.dtypes.items()]
                ),
                "dagster/table_name": f"{ds}.features",
                "dagster/row_count": len(frame),
            },
            data_version=DataVersion(version),
        )

    @asset(
        key=AssetKey([ds, "candidates"]),
        deps=[features.key],
        group_name=ds,
        pool=POOL,
        kinds={"scikit-learn", "mlflow"},
        automation_condition=EAGER,
        description=f"One tuned model per family, each an MLflow run with holdout metrics ({ds}).",
    )
    def candidates(
        context: AssetExecutionContext, warehouse: Warehouse, mlflow: MlflowTracking
    ) -> MaterializeResult:
        frame = read_features(warehouse, spec)
        with mlflow.step_run(context):
            table_ = train_candidates(context, spec, frame)
        with warehouse.get_connection() as con:
            replace_table(con, ds, "candidates", table_)
        shown = table_[["family", f"cv_{spec.selection_metric}", *metric_columns(spec), "run_id"]]
        return MaterializeResult(
            metadata={
                "candidates": MetadataValue.md(shown.to_markdown(index=False)),
                "selection_metric": spec.selection_metric,
                "data_version": str(table_["data_version"].iloc[0]),
                "dagster/table_name": f"{ds}.candidates",
            }
        )

    @asset(
        key=AssetKey([ds, "champion_model"]),
        deps=[candidates.key],
        group_name=ds,
        pool=POOL,
        kinds={"mlflow"},
        check_specs=champion_check_specs(AssetKey([ds, "champion_model"])),
        automation_condition=EAGER,
        description=(
            f"The registered `{ds}` model with alias `champion`, and its servable bundle under "
            f"models/{ds}/. A candidate is promoted only when it is at least as good."
        ),
    )
    def champion_model(
        context: AssetExecutionContext,
        warehouse: Warehouse,
        model_store: ModelStore,
        mlflow: MlflowTracking,
    ) -> MaterializeResult:
        with warehouse.get_connection() as con:
            candidates_table = con.execute(f"SELECT * FROM {table(ds, 'candidates')}").df()
        frame = read_features(warehouse, spec)
        with mlflow.step_run(context):
            return promote_best(
                context, spec, candidates_table, frame, model_store.dataset_dir(ds), warehouse
            )

    return [features, candidates, champion_model]


def metric_columns(spec: DatasetSpec) -> list[str]:
    return [f"test_{name}" for name in training.METRICS[spec.task]]


def train_candidates(context, spec: DatasetSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Fit, evaluate and log every family; the rows of `<ds>.candidates`."""
    x_train, y_train = feature_lib.model_inputs(frame, spec, "train")
    x_test, y_test = feature_lib.model_inputs(frame, spec, "test")
    version = feature_lib.data_version(frame)
    rows = []
    for family in training.families(spec.task):
        context.log.info(f"{spec.name}: tuning {family.name}")
        candidate = training.fit_candidate(family, spec, x_train, y_train)
        metrics = training.holdout_metrics(spec.task, candidate.model, x_test, y_test)
        cv_metric = f"cv_{spec.selection_metric}"
        logged = registry.log_candidate(
            spec.name,
            family.name,
            candidate.model,
            candidate.params,
            {cv_metric: candidate.cv_score, **metrics},
            x_train,
        )
        rows.append(
            {
                "family": family.name,
                "params": json.dumps(candidate.params, default=str),
                cv_metric: candidate.cv_score,
                "searched_rows": candidate.searched_rows,
                **metrics,
                "run_id": logged.run_id,
                "model_uri": logged.model_uri,
                "data_version": version,
                "trained_at": datetime.now(UTC).isoformat(),
                "dagster_run_id": context.run_id,
            }
        )
    return pd.DataFrame(rows)
