"""`mlops traffic` counts records and requests apart (50 records are not "1 x HTTP 200")."""

from mlops_assets.lib.traffic import Delivery, deliver
from mlops_assets_tests.live_server import start_server
from mlops_assets_tests.serving.conftest import fit_iris, publish
from serving.prediction_log import read_records

RECORD = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def test_records_and_requests_are_counted_apart(make_server):
    server = make_server()  # no model published: every request is answered 503 (no model yet)
    delivery = deliver(server.url, "iris", [RECORD] * 50, batch=20)
    assert delivery.requests == {503: 3}
    assert delivery.records == {503: 50}
    assert delivery.describe() == "50 records in 3 requests: 50 x HTTP 503"


def test_each_status_names_its_records_and_requests():
    delivery = Delivery(requests={200: 1, 422: 2}, records={200: 50, 422: 30})
    assert delivery.describe() == (
        "80 records in 3 requests: 50 x HTTP 200 (1 request), 30 x HTTP 422 (2 requests)"
    )


def test_labels_are_sent_back_under_each_answered_request_id(tmp_path):
    publish(tmp_path / "models", "iris", fit_iris(), "1")
    server = start_server(tmp_path, log_flush_interval=0.05)
    try:
        delivery = deliver(server.url, "iris", [RECORD] * 30, batch=20, labels=["setosa"] * 30)
        server.service.prediction_log.flush()
        server.service.feedback_log.flush()
    finally:
        server.stop()
    assert delivery.labels == {200: 30}
    assert delivery.describe().endswith("; 30 labels: 30 x HTTP 200")
    served = {(r["request_id"], i % 20) for i, r in enumerate(logged(tmp_path, "predictions"))}
    labelled = {(r["request_id"], r["row"]) for r in logged(tmp_path, "feedback")}
    assert labelled == served and len(labelled) == 30


def logged(data_dir, folder: str) -> list[dict]:
    return [
        r
        for path in (data_dir / folder / "iris").glob("*.jsonl")
        for r in read_records(path).records
    ]
