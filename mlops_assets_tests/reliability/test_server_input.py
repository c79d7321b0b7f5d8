"""Hostile request bodies and methods against a live server: complete JSON answers, bounded
error lists, no 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from mlops_assets_tests.live_server import LiveServer, start_server
from mlops_assets_tests.serving.conftest import IRIS_RECORD, fit_iris, publish
from mlops_contract.record import RecordField
from mlops_contract.validation import Invalid, compile_field


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("input")
    publish(data_dir / "models", "iris", fit_iris(), "1")
    live = start_server(data_dir)
    yield live
    live.stop()


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def post_raw(http: httpx.Client, path: str, body: bytes) -> httpx.Response:
    """POST `body` unchanged; a response cut short after its status line raises here."""
    return http.post(path, content=body, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("path", ["/models/iris/predict", "/models/iris/invocations"])
def test_deeply_nested_json_is_400(http, path):
    for body in ("[" * 100_000 + "]" * 100_000, "[" * 40 + "]" * 40, '{"a":' * 50 + "1" + "}" * 50):
        response = http.post(path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (body[:10], response.text[:200])
        assert "nested deeper than 32" in response.json()["detail"]
    shallow = http.post(path, content="[" * 20 + "]" * 20)
    assert shallow.status_code == 422  # within the limit: an ordinary invalid body


def test_lone_surrogate_field_name_gets_a_complete_422(http):
    body = json.dumps({**IRIS_RECORD, "\ud800": 1}).encode()  # ASCII: "\\ud800" escape
    response = post_raw(http, "/models/iris/predict", body)
    assert response.status_code == 422
    answer = response.json()
    assert {"field": "\\ud800", "message": "unknown field"} in answer["errors"]
    assert "\\ud800" in answer["detail"]


def test_lone_surrogate_column_in_invocations_gets_a_complete_422(http):
    columns = [*IRIS_RECORD, "\ud800"]
    split = {"columns": columns, "data": [[*IRIS_RECORD.values(), 1]]}
    body = json.dumps({"dataframe_split": split}).encode()
    response = post_raw(http, "/models/iris/invocations", body)
    assert response.status_code == 422
    assert {"field": "[0].\\ud800", "message": "unknown field"} in response.json()["errors"]


def test_lone_surrogate_in_free_text_is_rejected_not_logged():
    # the prediction log could not write it: rejected with a reason instead of dropped later
    field = compile_field(RecordField("note", "note", "category"))
    assert field.check("caf\u00e9") == "caf\u00e9"
    with pytest.raises(Invalid, match="lone surrogates"):
        field.check("\ud800")


def test_error_list_is_capped_with_the_total_count(http):
    body = [1.5] * 225_000  # ~900 KB: one error per element
    response = http.post("/models/iris/predict", content=json.dumps(body, separators=(",", ":")))
    assert response.status_code == 422
    answer = response.json()
    assert len(answer["errors"]) == 100 and answer["error_count"] == 225_000
    assert "224900 of 225000 errors not listed" in answer["detail"]
    assert len(response.content) < 20_000


def test_few_errors_are_all_listed_with_their_count(http):
    response = http.post("/models/iris/predict", json={**IRIS_RECORD, "sepal_length": "x"})
    assert response.status_code == 422
    assert response.json()["error_count"] == 1 and len(response.json()["errors"]) == 1


@pytest.mark.parametrize("method", ["PUT", "TRACE", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize(("action", "allow"), [("predict", "GET, POST"), ("invocations", "POST")])
def test_scoring_routes_answer_405_with_allow(http, method, action, allow):
    response = http.request(method, f"/models/iris/{action}")
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert "use POST" in response.json()["detail"]


def test_get_is_served_on_predict_only(http):
    assert http.get("/models/iris/predict", params=IRIS_RECORD).status_code == 200
    assert http.get("/models/iris/predict").status_code == 422  # every field missing
    assert http.get("/models/iris/invocations", params=IRIS_RECORD).status_code == 405


def test_dataframe_split_rejects_unknown_keys(http):
    split = {"columns": list(IRIS_RECORD), "data": [list(IRIS_RECORD.values())], "extra": 1}
    response = http.post("/models/iris/invocations", json={"dataframe_split": split})
    assert response.status_code == 422
    assert "'extra'" in response.json()["detail"]
    del split["extra"]
    split["index"] = [0]  # MLflow's scoring server accepts an index; so do we
    assert http.post("/models/iris/invocations", json={"dataframe_split": split}).status_code == 200
