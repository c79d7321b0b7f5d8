"""The champion asset's metadata from its evaluation and model card."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import MetadataValue

from mlops_contract.bundle import CARD_MARKDOWN_FILE

if TYPE_CHECKING:
    from mlops_assets.lib.evaluation import Evaluation


def card_metadata(evaluation: Evaluation, card: dict[str, bytes]) -> dict:
    """Intervals, the top input, the worst slice and the whole card as Markdown."""
    interval = evaluation.intervals[evaluation.metric]
    top = evaluation.importance[0] if evaluation.importance else None
    worst = evaluation.worst_slices[0] if evaluation.worst_slices else None
    metadata = {
        "metric_intervals": MetadataValue.json(evaluation.intervals),
        f"{evaluation.metric}_95_interval": (
            f"{interval['estimate']:.4f} [{interval['low']:.4f}, {interval['high']:.4f}]"
        ),
        "top_importance": (
            f"{top['field']}: {top['mean']:.4f} +- {top['std']:.4f}" if top else "(none)"
        ),
        "worst_slice": (
            f"{worst['feature']} {worst['slice']} ({worst['rows']} rows): "
            f"{worst['value']:.4f}, gap {worst['gap']:.4f}"
            if worst
            else "(none)"
        ),
        "model_card": MetadataValue.md(card[CARD_MARKDOWN_FILE].decode()),
    }
    if evaluation.slice_gate is not None:
        metadata["slice_gate"] = evaluation.slice_gate.reason
    return metadata
