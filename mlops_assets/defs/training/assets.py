"""`<ds>/features`, `<ds>/candidates` and `<ds>/champion_model`.

Training, MLflow and promotion code is imported inside the steps: the code location (the UI's
code server, `dg check defs`) loads this module without scikit-learn or MLflow.
"""

import json
from datetime import UTC, datetime

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AutomationCondition,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
)

from mlops_assets.defs import keys
from mlops_assets.defs.keys import POOL, asset_key, group_name
from mlops_assets.defs.resources import MlflowTracking, ModelStore, Warehouse
from mlops_assets.defs.training.champion import champion_result
from mlops_assets.defs.training.checks import baseline_result, champion_check_specs
from mlops_assets.lib import features as feature_lib
from mlops_assets.lib.fingerprint import training_fingerprint
from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.warehouse import replace_table, table, table_exists
from mlops_contract.bundle import BundleError

EAGER = AutomationCondition.eager()


def read_features(warehouse: Warehouse, spec: DatasetSpec) -> pd.DataFrame:
    with warehouse.get_connection() as con:
        return con.execute(f"SELECT * FROM {table(spec.name, 'features')}").df()


def training_assets(spec: DatasetSpec) -> list:
    ds = spec.name

    @asset(
        key=asset_key(ds, keys.FEATURES),
        deps=[asset_key(ds, keys.VALIDATED)],
        group_name=group_name(ds),
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
        context.log.info(f"{ds}: model inputs {[c.field for c in spec.feature_columns]}")
        return MaterializeResult(
            metadata={
                "train_rows": int(counts.get("train", 0)),
                "test_rows": int(counts.get("test", 0)),
                "rows_without_target": without_target,
                "split": MetadataValue.json(spec.split.model_dump()),
                "model_inputs": MetadataValue.md(feature_lib.model_input_table(spec)),
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
        key=asset_key(ds, keys.CANDIDATES),
        deps=[features.key],
        group_name=group_name(ds),
        pool=POOL,
        kinds={"scikit-learn", "mlflow"},
        automation_condition=EAGER,
        description=f"One tuned model per family, each an MLflow run with holdout metrics ({ds}).",
    )
    def candidates(
        context: AssetExecutionContext, warehouse: Warehouse, mlflow: MlflowTracking
    ) -> MaterializeResult:
        frame = read_features(warehouse, spec)
        with mlflow.step_run(context, ds):
            fingerprint, same = registered_fingerprint(context, spec, frame)
            if same is not None:
                return unchanged_inputs(context, ds, fingerprint, same)
            table_ = train_candidates(context, spec, frame, fingerprint, mlflow.search_storage)
        with warehouse.get_connection() as con:
            replace_table(con, ds, "candidates", table_)
        return MaterializeResult(
            metadata={
                "candidates": MetadataValue.md(candidates_markdown(spec, table_)),
                **{f"mlflow_run_id/{row.family}": row.run_id for row in table_.itertuples()},
                "selection_metric": spec.selection_metric,
                "data_version": str(table_["data_version"].iloc[0]),
                "training_fingerprint": fingerprint,
                "dagster/table_name": f"{ds}.candidates",
            }
        )

    @asset(
        key=asset_key(ds, keys.CHAMPION),
        deps=[candidates.key],
        group_name=group_name(ds),
        pool=POOL,
        kinds={"mlflow", "scikit-learn"},
        check_specs=champion_check_specs(asset_key(ds, keys.CHAMPION)),
        automation_condition=EAGER,
        description=(
            f"The registered `{ds}` model with alias `champion`, and its servable bundle under "
            f"models/{ds}/. A candidate is promoted only when it is at least as good; one that "
            "loses but beats the baseline becomes `challenger`, its bundle published beside "
            "(challenger.json) for the servers to score in the shadow."
        ),
    )
    def champion_model(
        context: AssetExecutionContext,
        warehouse: Warehouse,
        model_store: ModelStore,
        mlflow: MlflowTracking,
    ) -> MaterializeResult:
        with warehouse.get_connection() as con:
            candidates_table = (
                con.execute(f"SELECT * FROM {table(ds, 'candidates')}").df()
                if table_exists(con, ds, "candidates")
                else None
            )
        from mlops_assets.lib.promotion import PromotionError, promote

        frame = read_features(warehouse, spec)
        with mlflow.step_run(context, ds):
            if candidates_table is None:
                # `candidates` trained nothing: the registry holds a version of these very inputs
                # (e.g. a new warehouse beside the same MLflow registry)
                fingerprint, same = registered_fingerprint(context, spec, frame)
                if same is None:
                    raise Failure(description=f"{ds}.candidates does not exist: materialize "
                                  f"{ds}/candidates first")  # fmt: skip
                return unchanged_inputs(context, ds, fingerprint, same, check=True)
            same = registered_candidate(context, spec, candidates_table)
            if same is not None:
                fingerprint = training_fingerprint(spec, feature_lib.data_version(frame))
                return unchanged_inputs(context, ds, fingerprint, same, check=True)
            try:
                outcome = promote(
                    spec,
                    candidates_table,
                    frame,
                    dataset_dir=model_store.dataset_dir(ds),
                    publish_to=model_store.url,
                    connect=warehouse.get_connection,
                    run_id=context.run_id,
                    trigger=context.run.tags.get(keys.TRIGGER_TAG, "manual"),
                )
            except (PromotionError, BundleError) as exc:
                raise Failure(description=str(exc)) from None
        for note in outcome.notes:
            context.log.warning(note)
        context.log.info(f"{ds}: {outcome.reason}")
        return champion_result(spec, outcome)

    return [features, candidates, champion_model]


def forced(context) -> bool:
    return context.run.tags.get(keys.FORCE_RETRAIN_TAG) == "true"


def registered_fingerprint(
    context, spec: DatasetSpec, frame: pd.DataFrame
) -> tuple[str, str | None]:
    """(this run's training fingerprint, the registered version trained with it or None; None
    as well on a run tagged `mlops/force_retrain: true`)."""
    from mlflow.tracking import MlflowClient

    from mlops_assets.lib import registry

    fingerprint = training_fingerprint(spec, feature_lib.data_version(frame))
    if forced(context):
        return fingerprint, None
    return fingerprint, registry.version_with_fingerprint(MlflowClient(), spec.name, fingerprint)


def registered_candidate(context, spec: DatasetSpec, candidates: pd.DataFrame) -> str | None:
    """The registry version of the best candidate's logged model when it already has one (the
    candidates were not retrained since it was judged), else None; None on a forced run."""
    from mlflow.tracking import MlflowClient

    from mlops_assets.lib import registry
    from mlops_assets.lib.promotion import best_candidate

    if forced(context) or candidates.empty:
        return None
    run_id = best_candidate(candidates, spec)["run_id"]
    return registry.version_of_run(MlflowClient(), spec.name, run_id)


def unchanged_inputs(
    context, ds: str, fingerprint: str, version: str, check: bool = False
) -> MaterializeResult:
    """Same training data, spec and code as a registered version: training again would only
    register a copy of it."""
    note = f"unchanged inputs, no new version: v{version} was trained on the same data and settings"
    context.log.info(f"{ds}: {note}")
    metadata = {"unchanged_inputs": True, "note": note, "training_fingerprint": fingerprint}
    checks = []
    if check:  # the version passed the gate when it was registered (a loser is never registered)
        checks = [baseline_result(True, {"note": note, "registered_version": version})]
    return MaterializeResult(metadata=metadata, check_results=checks)


def metric_columns(spec: DatasetSpec) -> list[str]:
    from mlops_assets.lib import training

    return [f"test_{name}" for name in training.METRICS[spec.task]]


def candidates_markdown(spec: DatasetSpec, candidates: pd.DataFrame) -> str:
    """The candidates side by side, narrow enough for the UI: run ids shortened (in full in
    their own `mlflow_run_id/<family>` entries)."""
    shown = candidates[["family", f"cv_{spec.selection_metric}", *metric_columns(spec)]]
    shown = shown.assign(run=candidates["run_id"].str[:8])
    return shown.to_markdown(index=False, floatfmt=".4f")


def train_candidates(
    context,
    spec: DatasetSpec,
    frame: pd.DataFrame,
    fingerprint: str = "",
    search_storage: str | None = None,
) -> pd.DataFrame:
    """Fit, evaluate and log every family, each in its candidate run (an Optuna search's trials
    nested under it, its study in `search_storage` named by the training `fingerprint`); the rows
    of `<ds>.candidates`."""
    from mlops_assets.lib import registry, training

    x_train, y_train = feature_lib.model_inputs(frame, spec, "train")
    x_test, y_test = feature_lib.model_inputs(frame, spec, "test")
    version = feature_lib.data_version(frame)
    cv_metric = f"cv_{spec.selection_metric}"
    rows = []
    for family in training.families(spec.task):
        context.log.info(f"{spec.name}: tuning {family.name} ({spec.search.backend})")
        with registry.candidate_run(spec.name, family.name):
            study = family_study(spec, family.name, cv_metric, fingerprint, search_storage)
            candidate = training.fit_candidate(family, spec, x_train, y_train, study=study)
            metrics = training.holdout_metrics(spec.task, candidate.model, x_test, y_test)
            folds = {f"{cv_metric}_fold{i}": s for i, s in enumerate(candidate.fold_scores)}
            logged = registry.log_fitted(
                family.name,
                candidate.model,
                candidate.params,
                {
                    cv_metric: candidate.cv_score,
                    **folds,
                    **metrics,
                    "search_trials": candidate.trials,
                },
                x_train,
            )
        rows.append(
            {
                "family": family.name,
                "params": json.dumps(candidate.params, default=str),
                cv_metric: candidate.cv_score,
                "fold_scores": json.dumps(candidate.fold_scores),
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


def family_study(
    spec: DatasetSpec, family: str, cv_metric: str, fingerprint: str, search_storage: str | None
):
    """The family's Optuna study, each finished trial logged as a run nested under the active
    candidate run; None for a grid search."""
    if spec.search.backend != "optuna":
        return None
    if not search_storage:
        raise Failure(description=f"{spec.name}: an optuna search needs the studies' storage")
    from functools import partial
    from pathlib import Path

    from mlops_assets.lib import registry
    from mlops_assets.lib.search import Study, study_name

    return Study(
        Path(search_storage),
        study_name(spec.name, family, fingerprint),
        on_trial=partial(registry.log_trial, family, cv_metric),
    )
