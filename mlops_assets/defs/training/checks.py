"""The model-quality gate of `<ds>/champion_model`.

It is evaluated inside the asset, before any alias moves, so a model that loses to a dummy is
never promoted; the check result records why.
"""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey

BEATS_BASELINE = "beats_baseline"


def champion_check_specs(key: AssetKey) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(
            BEATS_BASELINE,
            asset=key,
            blocking=True,
            description="The best candidate beats a dummy (mean / class priors) on the holdout "
            "by the spec's baseline_margin.",
        )
    ]


def baseline_result(passed: bool, metadata: dict) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=BEATS_BASELINE,
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        metadata=metadata,
    )
