"""The drift benchmark at smoke size (20k x 20k rows, 10 no-drift pairs per size), so it cannot rot.

The frames are seeded, so the verdicts below are deterministic; the assertions are what the
benchmark is about: both tools judge every feature, ours finds the large injected shifts and
leaves the unchanged features alone, and Evidently switches from tests to distances above 1,000
reference rows.
"""

import pytest

FEATURES = (
    "age", "income", "items_in_cart", "rating", "discount_share", "wait_minutes",
    "country", "device", "channel", "payment",
)  # fmt: skip
CHANGED = ("age", "income", "device", "channel")
LARGE_SHIFTS = ("income", "device", "channel")  # x1.25; mobile 60% -> 68%; partner 0.8% -> 3%
DRIFT = "**drift**"


def table_rows(stdout: str, heading: str, width: int) -> list[list[str]]:
    """Cells of the Markdown table rows (of `width` cells) under `### <heading>`."""
    section = stdout.split(f"### {heading}", 1)[1].split("\n### ", 1)[0]
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines()
    ]
    return [cells for cells in rows if len(cells) == width and not cells[0].startswith("---")]


def verdicts(stdout: str, scenario: str) -> dict[str, dict[str, str]]:
    rows = table_rows(stdout, f"Verdicts, {scenario} (", 9)
    return {
        cells[0]: {"truth": cells[2], "ours": cells[5], "evidently": cells[8]}
        for cells in rows
        if cells[0] in FEATURES
    }


@pytest.mark.slow
def test_drift_benchmark_runs_at_smoke_size(smoke_run):
    pytest.importorskip(
        "evidently", reason="the `bench` dependency group is not installed (make test-bench)"
    )
    result = smoke_run("bench.drift")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "network connection attempts: 0" in result.stdout

    drift = verdicts(result.stdout, "drift")
    assert set(drift) == set(FEATURES)
    assert {row[tool] for row in drift.values() for tool in ("ours", "evidently")} <= {DRIFT, "no"}
    assert {name for name, row in drift.items() if row["truth"] == "drift"} == set(CHANGED)
    assert all(drift[name]["ours"] == DRIFT for name in LARGE_SHIFTS)
    assert drift["income"]["evidently"] == DRIFT  # Wasserstein/std about 0.3, over its 0.1
    unchanged = [name for name in FEATURES if name not in CHANGED]
    assert sum(drift[name]["ours"] == DRIFT for name in unchanged) <= 1

    no_drift = verdicts(result.stdout, "no drift")
    assert set(no_drift) == set(FEATURES)
    assert sum(row["ours"] == DRIFT for row in no_drift.values()) <= 1

    false_alarms = table_rows(result.stdout, "False alarms", 6)
    methods = {(cells[0], cells[1]): cells[4] for cells in false_alarms if cells[1] in FEATURES}
    assert len(methods) == 2 * len(FEATURES)
    # Evidently tests at 500 reference rows and thresholds distances at 5,000
    assert methods[("500", "age")] == "K-S p_value"
    assert methods[("5,000", "age")] == "Wasserstein distance (normed)"
