"""The data-path benchmark at smoke size, so it cannot rot."""

import pytest


@pytest.mark.slow
def test_data_path_benchmark_runs_at_smoke_size(smoke_run):
    result = smoke_run("bench.data_path")
    assert result.returncode == 0, result.stderr
    # the progress lines, one per approach (the tables printed after them are checked below)
    lines = [line for line in result.stdout.splitlines() if "rows/s  peak RSS" in line]
    assert [line.split()[2] for line in lines] == ["ours", "usual"]
    # both approaches find the same bad rows
    assert len({line.rsplit("quarantined", 1)[1] for line in lines}) == 1
    assert "| peak RSS under 1.5 GB |" in result.stdout
