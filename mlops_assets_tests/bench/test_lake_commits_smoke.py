"""The catalog commit benchmark at smoke size (2 writers, 1 s per kind of commit), so it cannot
rot: every acknowledged commit's rows are in the lake, and nothing else is."""

import re
from pathlib import Path

import pytest

from mlops_assets_tests.bench.test_idle_cost_smoke import table_rows
from mlops_assets_tests.deploy.services import PG_BIN


@pytest.mark.slow
def test_every_acknowledged_commit_is_in_the_lake(smoke_run):
    if not Path(PG_BIN / "initdb").is_file():
        pytest.skip("needs PostgreSQL 15 (.ci/run installs it)")
    result = smoke_run("bench.lake_commits", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = table_rows(result.stdout)
    labels = ["DuckDB file W=1"] + [f"DuckLake, {kind} W=2" for kind in
                                    ("own-table", "one-table", "replace")]  # fmt: skip
    assert set(labels) <= set(rows), rows
    for label in labels:
        writers, per_s, *_, errors, connections, rows_match = rows[label]
        assert float(per_s) > 0, (label, rows[label])
        assert (errors, rows_match) == ("0", "yes"), (label, rows[label])
        if label.startswith("DuckLake"):  # each writer holds its own catalog connection
            assert int(connections) >= int(writers), (label, rows[label])
    assert re.search(r"One partition load .*: \d+ catalog commits", result.stdout)
