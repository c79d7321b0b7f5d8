"""The idle cost benchmark at smoke size (this tree, 3 and 8 data sets, 20 s), so it cannot rot."""

import pytest


def table_rows(printed: str) -> dict[str, list[str]]:
    """A printed Markdown table's body rows, by their first cell."""
    return {
        cells[0]: cells[1:]
        for line in printed.splitlines()
        if line.startswith("| ") and not line.startswith("| |")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }


@pytest.mark.slow
def test_idle_cost_benchmark_runs_at_smoke_size(smoke_run):
    result = smoke_run("bench.idle_cost", timeout=240)
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    load = rows["load the code location, wall s (median)"]
    idle = rows["idle daemon + code server, CPU s over the window"]
    assert float(load[0]) > 0 and float(load[1]) > 0
    assert float(idle[0]) > 0 and float(idle[1]) > 0  # the daemon and its code server ran
    assert idle[2].endswith("x")
