"""One rule per series feature: DuckDB's SQL over validated rows and the server's Python over its
history give the same numbers, per entity, with missing values and short histories."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from mlops_assets.lib.features import query_features
from mlops_assets.lib.spec import SpecError, parse_spec

SPEC = """
name: shops
source: shops.csv
columns:
  - {name: Day, type: date}
  - {name: Shop, type: category}
  - {name: Sales, type: float, nullable: true}
  - {name: Units, type: int}
series:
  time: Day
  entity: Shop
  lags: [{column: Sales, lags: [1, 3]}]
  windows: [{column: Sales, size: 4, stats: [mean, min, max]}]
target: Units
task: regression
"""


def spec(text=SPEC):
    return parse_spec(text, Path("shops.yaml"))


def validated(rows: int = 60, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sales = rng.normal(100, 30, rows) / 3  # fractions whose sums round differently by order
    sales[rng.random(rows) < 0.2] = np.nan
    return pd.DataFrame(
        {
            "_partition": "p",
            "_source_file": "p",
            "_row_number": np.arange(1, rows + 1),
            "Day": pd.date_range("2026-01-01", periods=rows // 2).repeat(2),
            "Shop": ["north", "south"] * (rows // 2),
            "Sales": sales,
            "Units": rng.integers(0, 9, rows),
        }
    ).sample(frac=1, random_state=seed)  # rows arrive in any order


def test_sql_and_the_servers_rule_agree_bit_for_bit():
    shops = spec()
    frame = validated()
    with duckdb.connect() as con:
        con.execute("CREATE SCHEMA shops")
        con.register("v", frame)
        con.execute("CREATE TABLE shops.validated AS SELECT * FROM v")
        offline = query_features(con, shops)
    for shop, rows in offline.sort_values("Day").groupby("Shop"):
        history = [None if pd.isna(v) else v for v in rows["Sales"]]
        for position in range(len(rows)):
            before = history[:position]
            for feature in shops.series_features:
                expected = rows[feature.name].iloc[position]
                value = feature.value(before)
                assert (value is None and pd.isna(expected)) or value == expected, (
                    shop, position, feature.name
                )  # fmt: skip


def test_series_features_are_model_inputs_but_not_request_fields():
    shops = spec()
    assert [f.name for f in shops.series_features] == [
        "Sales_lag1", "Sales_lag3", "Sales_mean4", "Sales_min4", "Sales_max4"
    ]  # fmt: skip
    assert [r.name for r in shops.input_rules] == ["Day", "Shop", "Sales"]
    assert "Sales_mean4" in [c.name for c in shops.feature_columns]
    assert shops.series.compiled().depth == 4
    # drift compares what requests send, and not dates: live ones are newer than any trained on
    assert [c.name for c in shops.drift_columns] == ["Shop", "Sales"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("time: Day", "time: Units"), "series.time 'Units' must be a date column"),
        (("column: Sales, lags", "column: Shop, lags"), "'Shop' is not a numeric column"),
        (("column: Sales, lags", "column: Units, lags"), "'Units' must be a request field"),
        (("lags: [1, 3]", "lags: [0]"), "each must be >= 1"),
        (("entity: Shop", "entity: Region"), "series.entity 'Region' must be a request field"),
        (("type: category}", "type: category, feature: false}"), "series.entity 'Shop' must be"),
    ],
)
def test_a_series_the_server_could_not_compute_is_refused(change, message):
    with pytest.raises(SpecError, match=message):
        spec(SPEC.replace(*change))
