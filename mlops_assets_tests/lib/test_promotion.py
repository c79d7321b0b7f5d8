from pathlib import Path

import pytest

from mlops_assets.lib.promotion import decide
from mlops_assets.lib.spec import parse_spec

TEXT = """
name: toy
source: toy.csv
columns: [{{name: x, type: float}}, {{name: y, type: float}}]
target: y
task: regression
metric: {metric}
gates: {{baseline_margin: 0.1, promotion_margin: {margin}}}
"""


def spec(metric="r2", margin=0.0):
    return parse_spec(TEXT.format(metric=metric, margin=margin), Path("toy.yaml"))


def test_first_model_is_promoted_when_it_beats_the_baseline():
    decision = decide(spec(), {"test_r2": 0.5}, {"test_r2": 0.0}, None)
    assert decision.promote and decision.beats_baseline and decision.reason.startswith("initial")


def test_model_not_beating_the_baseline_by_the_margin_is_refused():
    decision = decide(spec(), {"test_r2": 0.05}, {"test_r2": 0.0}, None)
    assert not decision.promote and not decision.beats_baseline


@pytest.mark.parametrize(("challenger", "promoted"), [(0.6, True), (0.5, True), (0.49, False)])
def test_challenger_needs_to_be_at_least_as_good(challenger, promoted):
    decision = decide(spec(), {"test_r2": challenger}, {"test_r2": 0.0}, {"test_r2": 0.5})
    assert decision.promote is promoted and decision.beats_baseline


def test_lower_is_better_metrics_and_margin():
    rmse = spec("rmse", margin=0.2)
    baseline = {"test_rmse": 3.0}
    assert decide(rmse, {"test_rmse": 2.1}, baseline, {"test_rmse": 2.0}).promote
    assert not decide(rmse, {"test_rmse": 2.3}, baseline, {"test_rmse": 2.0}).promote


def test_equal_metrics_are_reported_as_a_tie_not_as_better():
    decision = decide(spec(), {"test_r2": 0.5}, {"test_r2": 0.0}, {"test_r2": 0.5})
    assert decision.promote
    assert decision.reason.startswith("tie: promoted because test_r2 0.5000 equals")
    assert decision.kind == "tie"
    better = decide(spec(), {"test_r2": 0.6}, {"test_r2": 0.0}, {"test_r2": 0.5})
    assert better.kind == "better" and "at least as good" not in better.reason


def test_a_challenger_trailing_within_the_margin_says_so():
    decision = decide(spec(margin=0.05), {"test_r2": 0.47}, {"test_r2": 0.0}, {"test_r2": 0.5})
    assert decision.promote and decision.kind == "within margin"
