"""The promotion's outcome as what the UI shows: metadata of `<ds>/champion_model` and the
`beats_baseline` check result (the promotion itself is `lib.promotion.promote`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import MaterializeResult, MetadataValue

from mlops_assets.defs.training.card_metadata import card_metadata
from mlops_assets.defs.training.checks import baseline_result
from mlops_assets.lib.spec import DatasetSpec

if TYPE_CHECKING:
    from mlops_assets.lib.promotion import PromotionOutcome


def champion_result(spec: DatasetSpec, outcome: PromotionOutcome) -> MaterializeResult:
    metric = f"test_{spec.selection_metric}"
    gate = {
        "metric": metric,
        "candidate": outcome.metrics[metric],
        "baseline": outcome.baseline_metrics[metric],
        "baseline_kind": outcome.baseline_name,
        "margin": spec.gates.baseline_margin,
    }
    return MaterializeResult(
        metadata={**champion_metadata(outcome), **card_metadata(outcome.evaluation, outcome.card)},
        check_results=[baseline_result(outcome.decision.beats_baseline, gate)],
    )


def champion_metadata(outcome: PromotionOutcome) -> dict:
    metadata = {
        "promoted": outcome.promoted,
        "reason": outcome.reason,
        "family": outcome.family,
        "mlflow_run_id": outcome.mlflow_run_id,
        "registered_version": outcome.version or "(not registered)",
        "previous_champion_version": outcome.previous_version or "(none)",
        "bundle": str(outcome.bundle_path) if outcome.bundle_path else "(unchanged)",
        "previous_champion_metrics": MetadataValue.json(outcome.previous_metrics or {}),
    }
    return {**metadata, **{name: float(value) for name, value in outcome.metrics.items()}}
