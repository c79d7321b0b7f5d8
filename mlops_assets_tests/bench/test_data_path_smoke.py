"""The data-path benchmark at smoke size, so it cannot rot."""

import pytest


@pytest.mark.slow
def test_data_path_benchmark_runs_at_smoke_size(smoke_run):
    result = smoke_run("bench.data_path")
    assert result.returncode == 0, result.stderr
    # the progress lines, one per approach and file (the tables printed after them are checked
    # below)
    lines = [line for line in result.stdout.splitlines() if "rows/s  peak RSS" in line]
    assert [line.split()[2] for line in lines] == ["ours", "usual", "limit"] * 2
    for kind, measured in (("clean", lines[:3]), ("malformed", lines[3:])):
        assert all(f"file {kind} " in line for line in measured)
        # ours and the usual approach find the same bad rows, malformed lines included
        assert len({line.rsplit("quarantined", 1)[1].split()[0] for line in measured[:2]}) == 1
    assert "| peak RSS under 1.5 GB |" in result.stdout
    assert "| at least 0.5x the limit's rows/s |" in result.stdout
    assert "malformed lines takes at most 1.3x" in result.stdout
