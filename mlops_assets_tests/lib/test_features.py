from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.lib.features import assign_split, build_feature_set, data_version, model_inputs
from mlops_assets.lib.spec import parse_spec

SPEC = """
name: prices
source: prices.csv
columns:
  - {name: Date, type: date}
  - {name: EUR, type: float}
derived:
  - {name: EUR_previous, sql: "lag(EUR) OVER (ORDER BY Date)"}
  - {name: EUR_change, sql: "EUR - lag(EUR) OVER (ORDER BY Date)", feature: false}
target: EUR_change
task: regression
split: {method: random, seed: 7, test_fraction: 0.25}
"""


def frame(partition: str, rows: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "_partition": partition,
            "_source_file": partition,
            "_row_number": np.arange(1, rows + 1),
            "Date": pd.date_range("2024-01-01", periods=rows),
            "EUR": np.linspace(100, 200, rows),
            "EUR_previous": np.linspace(99, 199, rows),
            "EUR_change": np.ones(rows),
        }
    )


def spec(text=SPEC):
    return parse_spec(text, Path("prices.yaml"))


def test_random_split_is_deterministic_and_near_the_fraction():
    data = frame("a.csv", 2000)
    first, second = assign_split(data, spec()), assign_split(data.sample(frac=1), spec())
    assert first.equals(second.sort_index())
    assert 0.21 < (first == "test").mean() < 0.29


def test_rows_keep_their_side_when_new_partitions_arrive():
    old = frame("a.csv", 500)
    both = pd.concat([old, frame("b.csv", 500)], ignore_index=True)
    assert assign_split(old, spec()).equals(assign_split(both, spec()).iloc[:500])


def test_seed_changes_the_split():
    data = frame("a.csv", 500)
    other = spec(SPEC.replace("seed: 7", "seed: 8"))
    assert not assign_split(data, spec()).equals(assign_split(data, other))


def test_time_split_puts_the_latest_rows_in_test():
    data = frame("a.csv", 100).sample(frac=1, random_state=1)
    timed = spec(SPEC.replace("method: random, seed: 7", "method: time, column: Date"))
    split = assign_split(data, timed)
    assert data.loc[split == "test", "Date"].min() > data.loc[split == "train", "Date"].max()
    assert (split == "test").sum() == 25


def test_a_time_split_gives_model_inputs_in_time_order():
    data = frame("a.csv", 100).sample(frac=1, random_state=1)  # rows arrive out of order
    timed = spec(SPEC.replace("method: random, seed: 7", "method: time, column: Date"))
    features, _ = build_feature_set(data, timed)
    for side in ("train", "test"):
        _, y = model_inputs(features, timed, side)
        part = features[features["_split"] == side].sort_values("Date")
        assert np.array_equal(y, part["EUR_change"].to_numpy())


def test_rows_without_target_are_counted_not_used():
    data = frame("a.csv", 10)
    data.loc[0, "EUR_change"] = np.nan
    features, without = build_feature_set(data, spec())
    assert without == 1 and len(features) == 9
    assert list(features.columns) == [
        "_partition",
        "_source_file",
        "_row_number",
        "Date",
        "EUR",
        "EUR_previous",
        "EUR_change",
        "_split",
    ]


def test_model_inputs_and_data_version():
    features, _ = build_feature_set(frame("a.csv", 40), spec())
    x, y = model_inputs(features, spec(), "train")
    assert list(x.columns) == ["Date", "EUR", "EUR_previous"] and len(x) == len(y)
    assert x["Date"].dtype.kind == "M"  # a date reaches the model as a date, as from the server
    assert data_version(features) == data_version(features.copy())
    changed = features.copy()
    changed.loc[0, "EUR"] += 1
    assert data_version(changed) != data_version(features)
