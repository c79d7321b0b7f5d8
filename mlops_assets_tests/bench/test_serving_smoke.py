"""The serving benchmark at smoke size: every subject is served and measured, ours without errors.

Runs `python -m bench.serving --smoke --no-docs` (a build into a temporary folder, then wrk at 8
connections for 2 s per point); the abalone data is generated when the shared copy is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

WRK = Path("/usr/bin/wrk")
SUBJECTS = (
    "ours (mlops serve)",
    "FastAPI peer",
    "mlflow models serve",
    "ceiling (Litestar, no model)",
)


def load_rows(stdout: str) -> dict[str, dict[str, str]]:
    """Rows of the one-record table: `| connections | subject | req/s | p50 | p99 | errors |`."""
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0].isdigit():
            rows.setdefault(cells[1], {"rps": cells[2], "errors": cells[5]})
    return rows


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_serving_benchmark_smoke(smoke_run):
    if not WRK.is_file():
        pytest.skip(f"{WRK} is absent (apt-get install wrk)")
    completed = smoke_run("bench.serving", timeout=360)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]
    rows = load_rows(completed.stdout)
    assert set(SUBJECTS) <= set(rows), output[-4000:]
    assert rows["ours (mlops serve)"]["errors"] == "0", output[-4000:]
    assert "identical predictions (rtol 1e-09) | equal | yes" in completed.stdout
