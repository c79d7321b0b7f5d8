"""The search benchmark at smoke size (diabetes, the grid's own time), so it cannot rot."""

import pytest


@pytest.mark.slow
def test_search_benchmark_runs_at_smoke_size(smoke_run):
    result = smoke_run("bench.search")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| diabetes |")]
    searches = [cell.strip() for line in rows for cell in line.strip("|").split("|")[1:3]]
    assert {"grid", "optuna 1x"} <= set(searches)
    assert len(rows) == 2 + 3 * 2  # the chosen candidate per search, then per family
