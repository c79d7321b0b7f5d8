"""A data set the test declares itself: a daily price series with derived lag features."""

import json

import duckdb
import numpy as np
import pytest
from dagster import AssetKey

from mlops_assets.build import build_dataset
from mlops_assets.components.project import project_specs
from mlops_assets.lib.features import model_inputs
from mlops_assets.settings import load_settings
from mlops_contract import bundle
from mlops_contract.bundle import CARD_JSON_FILE
from mlops_contract.record import manifest_fields
from serving.model import from_bundle

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


def declare(tmp_path, monkeypatch, text: str, write) -> tuple:
    """(settings, spec) of the data set `text` declares in a spec folder, its file written."""
    specs_dir = tmp_path / "specs"
    specs_dir.mkdir()
    (specs_dir / "prices.yaml").write_text(text)
    write(specs_dir)
    monkeypatch.setenv("MLOPS_DATASETS_DIR", str(specs_dir))
    settings = load_settings()
    return settings, project_specs(settings)["prices"]


def test_declared_time_series_builds_end_to_end(settings, instance, tmp_path, monkeypatch):
    settings, spec = declare(tmp_path, monkeypatch, SPEC, write_series)

    outcome = build_dataset(spec, settings, instance)
    assert outcome.success, outcome.describe()
    served = bundle.load_bundle(settings.models_dir / "prices")
    assert [field.name for field in manifest_fields(served.manifest)] == [
        "Date",
        "change_1",
        "change_2",
    ]
    assert served.manifest["metrics"]["test_r2"] > 0.3


DATED_SPEC = """
name: prices
source: prices.csv
read: {thousands: ",", na_values: ["#N/A", ""]}
columns:
  - {name: Date, type: date, format: "%m/%d/%Y"}
  - {name: EUR, type: float, min: 0}
derived:
  - {name: EUR_change, sql: "EUR - lag(EUR) OVER (ORDER BY Date)", feature: false}
target: EUR_change
task: regression
split: {method: time, column: Date, test_fraction: 0.2}
gates: {min_rows: 200}
"""


def write_weekday_series(folder, days=700, seed=5):
    """Daily prices whose change depends on the day of the week (Mondays up, Fridays down), so
    only a model that reads the date can beat the naive forecasts."""
    rng = np.random.default_rng(seed)
    dates = np.datetime64("2021-01-01") + np.arange(days)
    weekday = (dates.astype("datetime64[D]").astype(int) + 3) % 7  # Monday = 0
    effect = np.array([8.0, 2.0, 0.0, -1.0, -8.0, 0.0, 0.0])[weekday]
    prices = 1500 + np.cumsum(effect + rng.normal(0, 1.5, days))
    lines = ["Date,EUR"]
    for date, price in zip(dates, prices, strict=True):
        year, month, day = str(date).split("-")
        lines.append(f'{int(month)}/{int(day)}/{year},"{price:,.1f}"')
    (folder / "prices.csv").write_text("\n".join(lines))


def test_a_date_is_a_feature_sent_as_the_user_writes_it(
    settings, instance, tmp_path, monkeypatch, make_server
):
    settings, spec = declare(tmp_path, monkeypatch, DATED_SPEC, write_weekday_series)

    outcome = build_dataset(spec, settings, instance)
    assert outcome.success, outcome.describe()
    served = bundle.load_bundle(settings.models_dir / "prices")
    assert [field.name for field in manifest_fields(served.manifest)] == ["Date", "EUR"]
    assert served.manifest["metrics"]["test_r2"] > 0.5  # the weekday is read from the date
    inputs = instance.get_latest_materialization_event(AssetKey(["prices", "features"]))
    table = inputs.asset_materialization.metadata["model_inputs"].value
    card = json.loads((served.path / CARD_JSON_FILE).read_text())
    # a date's slices would be single days: the card slices EUR only
    assert {row["feature"] for row in card["evaluation"]["slices"]} == {"EUR"}
    assert "| Date | Date | date | split into year, quarter, month" in table

    server = make_server(settings.data_dir)
    with server.client() as client:
        iso = client.get("/models/prices/predict", params={"Date": "2023-10-01", "EUR": 1.2})
        own = client.get("/models/prices/predict", params={"Date": "10/01/2023", "EUR": 1.2})
        bad = client.get("/models/prices/predict", params={"Date": "2023-13-01", "EUR": 1.2})
        # the request as the users send it: the server serves one model
        short = client.get("/predict", params={"Date": "2023-10-01", "EUR": 1.2})
    assert iso.status_code == 200, iso.text
    print("GET /models/prices/predict?Date=2023-10-01&EUR=1.2 ->", iso.json())
    assert own.json()["prediction"] == iso.json()["prediction"] == short.json()["prediction"]
    assert bad.status_code == 422
    assert "Date" in bad.text and "%m/%d/%Y" in bad.text


def test_served_date_features_equal_the_offline_ones(settings, instance, tmp_path, monkeypatch):
    """Parity: the holdout rows, sent as a client sends them (ISO text), score exactly as the
    training pipeline scores them from the warehouse."""
    settings, spec = declare(tmp_path, monkeypatch, DATED_SPEC, write_weekday_series)
    assert build_dataset(spec, settings, instance).success

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        features = con.sql("SELECT * FROM prices.features").df()
    x_test, _ = model_inputs(features, spec, "test")
    champion = bundle.load_bundle(settings.models_dir / "prices")
    served = from_bundle("prices", champion)
    sent = zip(x_test["Date"].dt.strftime("%Y-%m-%d"), x_test["EUR"], strict=True)
    rows = [
        [field.check(value) for field, value in zip(served.fields, record, strict=True)]
        for record in sent
    ]
    assert served.predict(rows).values == champion.model.predict(x_test).tolist()
