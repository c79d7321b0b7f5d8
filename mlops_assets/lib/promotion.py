"""The champion gate: a challenger replaces the champion only when it is at least as good."""

from __future__ import annotations

from dataclasses import dataclass

from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.training import improvement


@dataclass(frozen=True)
class Decision:
    promote: bool
    beats_baseline: bool
    reason: str

    @property
    def kind(self) -> str:
        """initial | better | kept champion | below baseline"""
        return self.reason.split(":", 1)[0] if self.beats_baseline else "below baseline"


def decide(
    spec: DatasetSpec,
    challenger: dict[str, float],
    baseline: dict[str, float],
    champion: dict[str, float] | None,
) -> Decision:
    """Compare on the same holdout: first against the dummy baseline, then against the champion."""
    metric = f"test_{spec.selection_metric}"
    over_baseline = improvement(spec, challenger, baseline)
    if over_baseline <= spec.gates.baseline_margin:
        return Decision(
            False,
            False,
            f"{metric} {challenger[metric]:.4f} does not beat the baseline's "
            f"{baseline[metric]:.4f} by more than {spec.gates.baseline_margin}",
        )
    if champion is None:
        return Decision(True, True, "initial: no champion yet")
    over_champion = improvement(spec, challenger, champion)
    if over_champion >= -spec.gates.promotion_margin:
        return Decision(
            True,
            True,
            f"better: {metric} {challenger[metric]:.4f} is at least as good as the champion's "
            f"{champion[metric]:.4f} (margin {spec.gates.promotion_margin})",
        )
    return Decision(
        False,
        True,
        f"kept champion: {metric} {challenger[metric]:.4f} trails the champion's "
        f"{champion[metric]:.4f} by more than the margin {spec.gates.promotion_margin}",
    )
