"""The many-champions benchmark at smoke size (2 and 4 iris champions), so it cannot rot."""

import pytest

from mlops_assets_tests.bench.test_idle_cost_smoke import table_rows


@pytest.mark.slow
def test_one_server_serves_every_cloned_champion_without_errors(smoke_run):
    result = smoke_run("bench.many_models", timeout=600)
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert rows["champions served"][:2] == ["2", "4"]
    assert rows["errors (both loads)"][:2] == ["0", "0"]
    small, large = (int(cell.replace(",", "")) for cell in rows["`/metrics` samples (lines)"][:2])
    assert large > small  # each model brings its own series
