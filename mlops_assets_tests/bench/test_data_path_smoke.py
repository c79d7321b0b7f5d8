"""The data-path benchmark at smoke size, so it cannot rot."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_data_path_benchmark_runs_at_smoke_size():
    result = subprocess.run(
        [sys.executable, "-m", "bench.data_path", "--smoke", "--no-docs"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "rows/s" in line]
    assert [line.split()[2] for line in lines] == ["ours", "usual"]
    # both approaches find the same bad rows
    assert len({line.rsplit("quarantined", 1)[1] for line in lines}) == 1
