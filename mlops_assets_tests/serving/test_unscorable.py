"""Schema-valid records the model cannot score: a 422 naming the field, nothing sent or logged."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlops_assets_tests.live_server import start_server
from mlops_assets_tests.serving.conftest import diabetes_frame, fit_diabetes, publish
from serving.prediction_log import read_records

HUGE = 1.7e308  # finite JSON, within the contract (s1..s6 have no maximum)


def typical_record() -> dict:
    features, _ = diabetes_frame()
    return features.iloc[0].to_dict() | {"sex": int(features.iloc[0]["sex"])}


@pytest.fixture(scope="module")
def diabetes_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("diabetes")
    publish(data_dir / "models", "diabetes", fit_diabetes(), "1")
    server = start_server(data_dir, log_flush_interval=0.05)
    yield server
    server.stop()


def logged(server) -> list[dict]:
    server.service.prediction_log.flush()
    folder = server.data_dir / "predictions" / "diabetes"
    return [r for path in folder.glob("*.jsonl") for r in read_records(path).records]


# s5 overflows the scaler (an infinite feature); s4 passes it but overflows the output
@pytest.mark.parametrize("field", ["s4", "s5"])
def test_a_value_that_overflows_the_model_is_a_422_naming_the_field(diabetes_server, field):
    with diabetes_server.client() as http:
        answer = http.post("/models/diabetes/predict", json=typical_record() | {field: HUGE})
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["errors"]
    assert error["field"] == field and "far outside" in error["message"]


def test_a_batch_names_the_record_and_logs_nothing_of_it(diabetes_server):
    before = len(logged(diabetes_server))
    batch = [typical_record(), typical_record() | {"s5": HUGE}]
    with diabetes_server.client() as http:
        answer = http.post("/models/diabetes/predict", json=batch)
    assert answer.status_code == 422
    assert [e["field"] for e in answer.json()["errors"]] == ["[1].s5"]
    assert len(logged(diabetes_server)) == before


def test_bad_records_cost_concurrent_good_ones_nothing(diabetes_server):
    good = typical_record()
    bad = [typical_record() | {"s4": HUGE}, typical_record() | {"s5": HUGE}]

    def send(record):
        with diabetes_server.client() as http:
            return http.post("/models/diabetes/predict", json=record)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, [good, bad[0], good, bad[1]] * 20))
    assert [a.status_code for a in answers[0::2]] == [200] * 40
    assert [a.status_code for a in answers[1::2]] == [422] * 40
    predictions = [a.json()["prediction"] for a in answers[0::2]]
    # batches of different sizes may differ in the last bit (BLAS), not more
    assert predictions == pytest.approx([predictions[0]] * 40, rel=1e-12)
    assert math.isfinite(predictions[0])
    assert all(math.isfinite(r["output"]["prediction"]) for r in logged(diabetes_server))
