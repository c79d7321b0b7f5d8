"""Pick the best candidate, gate it, and promote it: registry alias plus servable bundle."""

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import AssetExecutionContext, Failure, MaterializeResult, MetadataValue
from mlflow.tracking import MlflowClient

from mlops_assets.defs.resources import Warehouse
from mlops_assets.defs.training.card_metadata import card_metadata
from mlops_assets.defs.training.checks import baseline_result
from mlops_assets.lib import drift, model_card, registry, training
from mlops_assets.lib import features as feature_lib
from mlops_assets.lib.contract import input_contract
from mlops_assets.lib.evaluation import evaluate
from mlops_assets.lib.promotion import Decision, decide
from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.warehouse import append_rows
from serving import bundle

HISTORY_COLUMNS = (
    "version VARCHAR, promoted_at TIMESTAMPTZ, previous_version VARCHAR, reason VARCHAR, "
    "trigger VARCHAR, dagster_run_id VARCHAR, metrics JSON, previous_metrics JSON"
)


def best_candidate(candidates: pd.DataFrame, spec: DatasetSpec) -> pd.Series:
    metric = f"test_{spec.selection_metric}"
    ordered = candidates.sort_values(metric, ascending=not spec.higher_is_better, kind="stable")
    return ordered.iloc[0]


def champion_metrics(context, spec: DatasetSpec, x_test, y_test) -> tuple[str | None, dict | None]:
    """The current champion's version and its metrics on today's holdout (None when unusable)."""
    current = registry.champion_version(MlflowClient(), spec.name)
    if current is None:
        return None, None
    try:
        model = registry.load_model(f"models:/{spec.name}@{registry.CHAMPION}")
        return str(current.version), training.holdout_metrics(spec.task, model, x_test, y_test)
    except Exception as exc:  # an unloadable or incompatible champion cannot defend its title
        context.log.warning(f"{spec.name}: champion v{current.version} cannot be scored: {exc}")
        return str(current.version), None


def manifest_for(
    spec: DatasetSpec, best: pd.Series, version: str, metrics: dict, context, x_train
) -> dict:
    return {
        "name": spec.name,
        "version": version,
        "task": spec.task,
        "target": spec.target,
        **input_contract(spec, x_train),  # input_schema; inputs until the server reads that
        "classes": None,
        "metrics": metrics,
        "selection_metric": spec.selection_metric,
        "family": best["family"],
        "trained_at": best["trained_at"],
        "promoted_at": datetime.now(UTC).isoformat(),
        "mlflow_run_id": best["run_id"],
        "model_uri": f"models:/{spec.name}/{version}",
        "logged_model_uri": best["model_uri"],
        "data_version": best["data_version"],
        "dagster_run_id": context.run_id,
        "python": registry.python_version(),
        "requirements": registry.pip_requirements(),
    }


def reference_profile(spec: DatasetSpec, model, x_train: pd.DataFrame) -> bytes:
    """What drift is measured against: the training inputs and the model's outputs on them."""
    frame = x_train.assign(prediction=model.predict(x_train))
    kinds = {c.name: "numeric" if c.is_numeric else "categorical" for c in spec.feature_columns}
    kinds["prediction"] = "numeric" if spec.task == "regression" else "categorical"
    return json.dumps(drift.build_profile(frame, kinds)).encode()


def promotion_row(context, spec: DatasetSpec, decision, version, previous_version) -> dict:
    return {
        "version": version,
        "promoted_at": datetime.now(UTC),
        "previous_version": previous_version,
        "reason": decision.kind,
        "trigger": context.run.tags.get("mlops/trigger", "manual"),
        "dagster_run_id": context.run_id,
    }


def publish_bundle(dataset_dir: Path, model, manifest: dict, x_test, extra: dict) -> Path:
    """Write the bundle, prove it loads and predicts like the model in memory, then switch."""
    if hasattr(model, "classes_"):
        manifest["classes"] = [c.item() if hasattr(c, "item") else c for c in model.classes_]
    bundle_id = f"v{manifest['version']}-{manifest['dagster_run_id'][:8]}"
    path = bundle.write_bundle(
        dataset_dir, bundle_id, model, manifest, activate=False, extra_files=extra
    )
    reloaded = bundle.load_bundle(dataset_dir, bundle.pointer_for(dataset_dir, bundle_id))
    if not np.array_equal(reloaded.model.predict(x_test), model.predict(x_test)):
        raise Failure(description=f"{path}: the bundle predicts differently from the model")
    bundle.point_to(dataset_dir, bundle_id)
    return path


def promote_best(
    context: AssetExecutionContext,
    spec: DatasetSpec,
    candidates: pd.DataFrame,
    features: pd.DataFrame,
    dataset_dir: Path,
    warehouse: Warehouse,
) -> MaterializeResult:
    best = best_candidate(candidates, spec)
    model = registry.load_model(best["model_uri"])
    x_train, y_train = feature_lib.model_inputs(features, spec, "train")
    x_test, y_test = feature_lib.model_inputs(features, spec, "test")
    challenger = training.holdout_metrics(spec.task, model, x_test, y_test)
    baseline = training.holdout_metrics(
        spec.task, training.baseline(spec, x_train, y_train), x_test, y_test
    )
    previous_version, previous = champion_metrics(context, spec, x_test, y_test)
    evaluation = evaluate(spec, model, x_train, y_train, x_test, y_test)
    decision = evaluation.gated(decide(spec, challenger, baseline, previous))
    context.log.info(f"{spec.name}: {decision.reason}")
    version = bundle_path = None
    if decision.beats_baseline:
        version = registry.register(
            spec.name,
            best["model_uri"],
            {"dagster_run_id": context.run_id, "family": best["family"]},
        )
    with warehouse.get_connection() as con:
        card = model_card.card_files(
            con, spec, best, candidates, evaluation, decision, version, context.run_id
        )
    model_card.log_to_mlflow(best["run_id"], card)
    if decision.beats_baseline:
        if decision.promote:
            manifest = manifest_for(spec, best, version, challenger, context, x_train)
            manifest["metric_intervals"] = evaluation.intervals
            reference = reference_profile(spec, model, x_train)
            extra = {bundle.REFERENCE_FILE: reference, **card}
            bundle_path = publish_bundle(dataset_dir, model, manifest, x_test, extra)
        alias = registry.CHAMPION if decision.promote else registry.CHALLENGER
        MlflowClient().set_registered_model_alias(spec.name, alias, version)
        if decision.promote:
            history = promotion_row(context, spec, decision, version, previous_version)
            history.update(metrics=json.dumps(challenger), previous_metrics=json.dumps(previous))
            with warehouse.get_connection() as con:
                append_rows(
                    con, spec.name, "champion_history", pd.DataFrame([history]), HISTORY_COLUMNS
                )
    return MaterializeResult(
        metadata={
            **_metadata(
                spec, best, decision, version, previous_version, challenger, previous, bundle_path
            ),
            **card_metadata(evaluation, card),
        },
        check_results=[
            baseline_result(
                decision.beats_baseline,
                {
                    "metric": f"test_{spec.selection_metric}",
                    "candidate": challenger[f"test_{spec.selection_metric}"],
                    "baseline": baseline[f"test_{spec.selection_metric}"],
                    "margin": spec.gates.baseline_margin,
                },
            )
        ],
    )


def _metadata(
    spec, best, decision: Decision, version, previous_version, challenger, previous, path
):
    metadata = {
        "promoted": decision.promote,
        "reason": decision.reason,
        "family": best["family"],
        "mlflow_run_id": best["run_id"],
        "registered_version": version or "(not registered)",
        "previous_champion_version": previous_version or "(none)",
        "bundle": str(path) if path else "(unchanged)",
        "previous_champion_metrics": MetadataValue.json(previous or {}),
    }
    return {**metadata, **{name: float(value) for name, value in challenger.items()}}
