"""POST /models/{name}/feedback: labels for served requests, checked like records and kept."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mlops_assets_tests.live_server import start_server
from mlops_assets_tests.serving.conftest import IRIS_RECORD, fit_abalone, fit_iris, publish
from mlops_assets_tests.serving.test_prediction_log import full_disk_at
from serving.prediction_log import read_records


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("feedback")
    publish(data_dir / "models", "iris", fit_iris(), "1")
    publish(data_dir / "models", "abalone", fit_abalone(), "2")
    server = start_server(data_dir, api_key="secret", log_flush_interval=0.05)
    yield server
    server.stop()


def stored(server, dataset: str) -> list[dict]:
    server.service.feedback_log.flush()
    folder = server.data_dir / "feedback" / dataset
    return [r for path in sorted(folder.glob("*.jsonl")) for r in read_records(path).records]


def test_labels_for_served_and_unknown_requests_are_all_kept(labelled):
    key = {"X-API-Key": "secret"}
    with labelled.client() as http:
        answer = http.post("/models/iris/predict", json=IRIS_RECORD, headers=key).json()
        one = {"request_id": answer["request_id"], "actual": "setosa"}
        assert http.post("/models/iris/feedback", json=one, headers=key).json() == {
            "model": "iris",
            "accepted": 1,
        }
        later = [
            {"request_id": answer["request_id"], "actual": "virginica",
             "observed_at": "2026-12-01T10:00:00+00:00"},
            {"request_id": "never-served", "actual": "versicolor", "row": 2},
        ]  # fmt: skip
        assert http.post("/models/iris/feedback", json=later, headers=key).json()["accepted"] == 2
        metrics = http.get("/metrics").text
    kept = stored(labelled, "iris")
    # a second label for the same id supersedes the first downstream; both are kept here
    assert [(r["request_id"], r["actual"]) for r in kept[-3:]] == [
        (answer["request_id"], "setosa"),
        (answer["request_id"], "virginica"),
        ("never-served", "versicolor"),
    ]
    assert kept[-1]["row"] == 2 and kept[-1]["model"] == "iris" and kept[-1]["received_at"]
    assert 'mlops_feedback_labels_total{model="iris"}' in metrics


@pytest.mark.parametrize(
    ("model", "body", "field", "message"),
    [
        ("iris", {"request_id": "r1", "actual": "tulip"}, "actual", "one of the model's classes"),
        ("iris", [{"request_id": "r1", "actual": "setosa"}, {"actual": "setosa"}],
         "[1].request_id", "required"),
        ("abalone", {"request_id": "r1", "actual": "ten"}, "actual", "finite number"),
        ("abalone", {"request_id": "r1", "actual": 9, "observed_at": "yesterday"},
         "observed_at", "ISO 8601"),
        ("abalone", {"request_id": "r1", "actual": 9, "row": -1}, "row", "non-negative"),
        ("abalone", {"request_id": "r1", "actual": 9, "label": 9}, "label", "unknown field"),
    ],
)  # fmt: skip
def test_a_bad_label_is_a_422_naming_the_item_and_field_and_nothing_is_kept(
    labelled, model, body, field, message
):
    before = len(stored(labelled, model))
    with labelled.client() as http:
        answer = http.post(f"/models/{model}/feedback", json=body, headers={"X-API-Key": "secret"})
    assert answer.status_code == 422, answer.text
    errors = {error["field"]: error["message"] for error in answer.json()["errors"]}
    assert message in errors[field]
    assert len(stored(labelled, model)) == before  # all or nothing


def test_feedback_takes_the_predict_routes_auth_methods_and_limits(labelled):
    with labelled.client() as http:
        label = {"request_id": "r1", "actual": 9}
        assert http.post("/models/abalone/feedback", json=label).status_code == 401
        assert (
            http.get("/models/abalone/feedback", headers={"X-API-Key": "secret"}).status_code == 405
        )
        assert http.post("/models/nope/feedback", json=label,
                         headers={"X-API-Key": "secret"}).status_code == 404  # fmt: skip
        huge = [label] * 60_000  # over the 1 MiB body limit
        too_big = http.post("/models/abalone/feedback", json=huge, headers={"X-API-Key": "secret"})
        assert too_big.status_code == 413
        documented = http.get("/openapi.json").json()["paths"]["/models/iris/feedback"]["post"]
    schema = documented["requestBody"]["content"]["application/json"]["schema"]
    assert schema["oneOf"][0]["properties"]["actual"] == {
        "enum": ["setosa", "versicolor", "virginica"]
    }


def feedback_unwritable(answer) -> bool:
    detail = answer.json().get("detail") or ""
    return answer.status_code == 503 and "feedback log cannot be written" in detail


def test_ready_says_so_while_the_feedback_log_cannot_be_written(make_server, iris_model):
    server = make_server(log_flush_interval=0.05)
    publish(server.models_dir, "iris", iris_model, "1")
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    path = server.data_dir / "feedback" / "iris" / f"{day}.jsonl"
    full_disk_at(path)
    with server.client() as http:
        server.wait_until(lambda: http.get("/models/iris").json().get("loaded"))
        label = {"request_id": "r1", "actual": "setosa"}
        assert http.post("/models/iris/feedback", json=label).status_code == 200
        # one answer both 503 and naming the feedback log (a second request could meet a retry)
        server.wait_until(lambda: feedback_unwritable(http.get("/ready")))
        path.unlink()  # space again: the held label is written, nothing lost
        server.wait_until(lambda: http.get("/ready").status_code == 200)
    assert [r["request_id"] for r in read_records(path).records] == ["r1"]
