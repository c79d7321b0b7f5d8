"""The pipeline benchmark at smoke size (iris), so it cannot rot."""

import pytest


@pytest.mark.slow
def test_pipeline_benchmark_runs_at_smoke_size(smoke_run):
    result = smoke_run("bench.pipeline")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("| iris"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    build, steps, serve = float(cells[1]), cells[2].split(" / "), float(cells[4])
    assert len(steps) == 5 and build > 0 and serve > 0
