"""A series data set: lags and a window computed in DuckDB for training and by the server from the
observations it keeps, so a request carries only the raw values."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from mlops_assets.build import build_dataset
from mlops_assets.lib import batch
from mlops_assets.lib.features import model_inputs
from mlops_assets_tests.defs.test_custom_dataset import (
    DATED_SPEC,
    declare,
    write_weekday_series,
)
from mlops_contract import bundle
from mlops_contract.record import manifest_fields
from serving.history import SeriesHistory
from serving.model import from_bundle

pytestmark = pytest.mark.slow

SERIES = """series:
  time: Date
  lags: [{column: EUR, lags: [1, 2]}]
  windows: [{column: EUR, size: 3, stats: [mean, max]}]
  max_gap_days: 5
"""
SPEC = DATED_SPEC.replace("target: EUR_change", SERIES + "target: EUR_change")  # the dated set
FEATURES = ["EUR_lag1", "EUR_lag2", "EUR_mean3", "EUR_max3"]


@pytest.fixture
def prices(settings, instance, tmp_path, monkeypatch):
    settings, spec = declare(tmp_path, monkeypatch, SPEC, write_weekday_series)
    assert build_dataset(spec, settings, instance).success
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        features = con.sql("SELECT * FROM prices.features").df()
        raw = con.sql("SELECT Date, EUR FROM prices.validated ORDER BY Date").df()
    return spec, settings, features, raw


def observations(raw) -> list[dict]:
    return [
        {"Date": day.strftime("%Y-%m-%d"), "EUR": eur}
        for day, eur in zip(raw["Date"], raw["EUR"], strict=True)
    ]


def test_served_series_features_and_predictions_equal_the_offline_ones(prices, tmp_path):
    spec, settings, features, raw = prices
    champion = bundle.load_bundle(settings.models_dir / "prices")
    assert [f.name for f in manifest_fields(champion.manifest)] == ["Date", "EUR"]
    assert [f["name"] for f in champion.manifest["series"]["features"]] == FEATURES
    served = from_bundle("prices", champion)
    history = SeriesHistory(served.series, served.series_window, tmp_path / "observations")
    history.record(
        [{"entity": None, "day": o["Date"], "values": {"EUR": o["EUR"]}} for o in
         observations(raw)]
    )  # fmt: skip
    x_test, _ = model_inputs(features, spec, "test")
    online = [history.features(None, day.strftime("%Y-%m-%d")) for day in x_test["Date"]]
    assert all(why is None for _, why in online)
    offline = x_test[FEATURES].astype(object).where(x_test[FEATURES].notna(), None)
    assert [values for values, _ in online] == offline.values.tolist()

    rows = [
        [field.check(value) for field, value in zip(served.fields, record, strict=True)] + values
        for record, (values, _) in zip(
            zip(x_test["Date"].dt.strftime("%Y-%m-%d"), x_test["EUR"], strict=True),
            online,
            strict=True,
        )
    ]
    assert served.predict(rows).values == champion.model.predict(x_test).tolist()
    # batch scoring takes the features computed with the rows, as training does
    scored = batch.score(x_test.reset_index(drop=True), served)
    assert scored.predictions["prediction"].tolist() == champion.model.predict(x_test).tolist()


def test_a_request_sends_raw_values_and_history_survives_a_restart(prices, make_server):
    _, settings, _, raw = prices
    last = raw["Date"].max()

    def day(after: int) -> str:
        return (last + pd.Timedelta(days=after)).strftime("%Y-%m-%d")

    def predict(client, date: str):
        return client.get("/models/prices/predict", params={"Date": date, "EUR": 1500.0})

    server = make_server(settings.data_dir)
    with server.client() as client:
        # the bundle carries the last observations: the days after them can be predicted at once
        assert predict(client, day(1)).status_code == 200
        without = predict(client, day(2)).json()["prediction"]
        too_early, gap = predict(client, "2019-01-01"), predict(client, day(8))
        sent = client.post("/models/prices/observations", json=[{"Date": day(1), "EUR": 1510.0}])
        bad = client.post("/models/prices/observations", json={"Date": day(1), "EUR": -3})
        with_it = predict(client, day(2)).json()["prediction"]
    assert too_early.status_code == gap.status_code == 422
    [error] = too_early.json()["errors"]
    assert error["field"] == "Date"
    assert "needs 3 observations before 2019-01-01, has 0" in error["message"]
    assert "more than 5 days before" in gap.json()["errors"][0]["message"]
    assert sent.status_code == 200 and sent.json()["accepted"] == 1
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "EUR"
    assert with_it != without  # the observation is in the lags now
    with server.client() as client:
        paths = client.get("/openapi.json").json()["paths"]
    documented = paths["/models/prices/observations"]["post"]
    item = documented["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0]
    assert sorted(item["properties"]) == ["Date", "EUR"]

    server.stop()
    restarted = make_server(settings.data_dir)
    with restarted.client() as client:
        assert predict(client, day(2)).json()["prediction"] == with_it  # replayed from disk
