"""A data set the test declares itself: a daily price series with derived lag features."""

import numpy as np
import pytest

from mlops_assets.build import build_dataset
from mlops_assets.lib.spec import load_specs
from mlops_assets.settings import load_settings
from mlops_contract import bundle
from mlops_contract.record import manifest_fields

pytestmark = pytest.mark.slow

SPEC = """
name: prices
description: Daily EUR price; predict the day-over-day change from the previous days' changes.
source: prices.csv
read: {thousands: ",", na_values: ["#N/A", ""]}
columns:
  - {name: Date, type: date, format: "%m/%d/%Y"}
  - {name: EUR, type: float, min: 0, feature: false}
  - {name: JPY, type: float, min: 0, nullable: true, feature: false}
derived:
  - {name: change_1, sql: "lag(EUR) OVER (ORDER BY Date) - lag(EUR, 2) OVER (ORDER BY Date)"}
  - {name: change_2, sql: "lag(EUR, 2) OVER (ORDER BY Date) - lag(EUR, 3) OVER (ORDER BY Date)"}
  - {name: EUR_change, sql: "EUR - lag(EUR) OVER (ORDER BY Date)", feature: false}
target: EUR_change
task: regression
split: {method: time, column: Date, test_fraction: 0.2}
gates: {min_rows: 200, baseline_margin: 0.1}
"""


def write_series(folder, days=600, seed=3):
    """A change series whose signal is the change two days back (so the naive forecasts,
    yesterday's change or none, are weak baselines), written the way exported price files look
    (M/D/YYYY, 1,234.5)."""
    rng = np.random.default_rng(seed)
    change = np.zeros(days)
    for day in range(2, days):
        change[day] = 0.8 * change[day - 2] + rng.normal(0, 5)
    prices = 1500 + np.cumsum(change)
    dates = np.datetime64("2020-01-01") + np.arange(days)
    lines = ["Date,EUR,JPY"]
    for index, (date, price) in enumerate(zip(dates, prices, strict=True)):
        year, month, day = str(date).split("-")
        jpy = "#N/A" if index % 7 == 0 else f'"{price * 150:,.1f}"'
        lines.append(f'{int(month)}/{int(day)}/{year},"{price:,.1f}",{jpy}')
    (folder / "prices.csv").write_text("\n".join(lines))


def test_declared_time_series_builds_end_to_end(settings, instance, tmp_path, monkeypatch):
    specs_dir = tmp_path / "specs"
    specs_dir.mkdir()
    (specs_dir / "prices.yaml").write_text(SPEC)
    write_series(specs_dir)
    monkeypatch.setenv("MLOPS_DATASETS_DIR", str(specs_dir))
    settings = load_settings()
    spec = load_specs(settings.spec_dirs)["prices"]

    outcome = build_dataset(spec, settings, instance)
    assert outcome.success, outcome.describe()
    served = bundle.load_bundle(settings.models_dir / "prices")
    assert [field.name for field in manifest_fields(served.manifest)] == ["change_1", "change_2"]
    assert served.manifest["metrics"]["test_r2"] > 0.3
