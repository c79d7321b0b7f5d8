"""The start-up benchmark at smoke size (this tree, one round), so it cannot rot."""

import pytest


@pytest.mark.slow
def test_startup_benchmark_runs_at_smoke_size(smoke_run):
    # a guard against a hang, not a speed target (bench.startup measures): CI may be loaded
    result = smoke_run("bench.startup", timeout=300)
    assert result.returncode == 0, result.stderr
    rows = {
        cells[0]: float(cells[1])
        for line in result.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| seconds")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }
    assert rows["`mlops build iris`, wall"] > rows["step `candidates`"] > 0
    # the demo answered both ways, and was stopped without a process left behind
    assert rows["demo: UI and prediction both answer"] >= rows["demo: server `/health` answers"]
    assert "processes left behind by a demo and killed: 0" in result.stdout
