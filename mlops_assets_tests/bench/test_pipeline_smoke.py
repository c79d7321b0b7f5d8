"""The pipeline benchmark at smoke size (iris), so it cannot rot."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_pipeline_benchmark_runs_at_smoke_size():
    result = subprocess.run(
        [sys.executable, "-m", "bench.pipeline", "--smoke", "--no-docs"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("| iris"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    build, steps, serve = float(cells[1]), cells[2].split(" / "), float(cells[4])
    assert len(steps) == 5 and build > 0 and serve > 0
