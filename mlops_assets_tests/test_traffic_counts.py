"""`mlops traffic` counts records and requests apart (50 records are not "1 x HTTP 200")."""

from mlops_assets.lib.traffic import Delivery, deliver

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
