"""The prediction log: written off the request path, readable, tolerant of a torn last line."""

from __future__ import annotations

from datetime import UTC, datetime

from mlops_assets_tests.serving.conftest import ABALONE_RECORD, IRIS_RECORD, publish
from serving.prediction_log import JsonLinesLog, Served, read_records


def test_served_predictions_are_logged(make_server, iris_model):
    server = make_server(log_flush_interval=0.1)
    publish(server.models_dir, "iris", iris_model, "1")
    with server.client() as http:
        server.wait_until(lambda: http.get("/ready").status_code == 200)
        one = http.post("/models/iris/predict", json=IRIS_RECORD, headers={"X-Request-ID": "r1"})
        two = http.post("/models/iris/predict", json=[IRIS_RECORD, IRIS_RECORD])
        assert one.status_code == two.status_code == 200
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    path = server.data_dir / "predictions" / "iris" / f"{day}.jsonl"
    server.wait_until(lambda: path.exists() and len(read_records(path).records) == 3)
    records = read_records(path).records
    first = next(record for record in records if record["request_id"] == "r1")
    assert first["model"] == "iris" and first["version"] == "1"
    assert first["input"] == IRIS_RECORD
    assert first["output"]["prediction"] == one.json()["prediction"]
    assert first["output"]["probabilities"] == one.json()["probabilities"]
    assert first["latency_ms"] >= 0 and first["timestamp"].startswith(day)


def served(dataset: str, request_id: str, timestamp: str) -> Served:
    return Served(dataset, dataset, "1", request_id, timestamp, [ABALONE_RECORD], [9.5], None, 1.2)


def test_partitioned_by_dataset_and_utc_date(tmp_path):
    log = JsonLinesLog(tmp_path, flush_interval=60)
    log.start()
    log.append(served("abalone", "a", "2025-03-01T23:59:59+00:00"))
    log.append(served("abalone", "b", "2025-03-02T00:00:01+00:00"))
    log.append(served("iris", "c", "2025-03-02T00:00:01+00:00"))
    log.close()  # flushes what is still queued
    assert [
        r["request_id"] for r in read_records(tmp_path / "abalone" / "2025-03-01.jsonl").records
    ] == ["a"]
    assert [
        r["request_id"] for r in read_records(tmp_path / "abalone" / "2025-03-02.jsonl").records
    ] == ["b"]
    assert read_records(tmp_path / "iris" / "2025-03-02.jsonl").records[0]["output"] == {
        "prediction": 9.5
    }


def test_torn_last_line_is_skipped_and_later_lines_survive(tmp_path):
    log = JsonLinesLog(tmp_path, flush_interval=60)
    log.append(served("abalone", "a", "2025-03-01T10:00:00+00:00"))
    log.flush()
    path = tmp_path / "abalone" / "2025-03-01.jsonl"
    with path.open("ab") as handle:  # what a crash in the middle of a write leaves behind
        handle.write(b'{"request_id": "torn", "inp')
    result = read_records(path)
    assert [r["request_id"] for r in result.records] == ["a"] and result.skipped == 1

    log.append(served("abalone", "b", "2025-03-01T10:00:01+00:00"))
    log.flush()
    result = read_records(path)
    assert [r["request_id"] for r in result.records] == ["a", "b"] and result.skipped == 1


def test_full_queue_drops_and_counts(tmp_path):
    dropped = []
    log = JsonLinesLog(tmp_path, max_queued=2, on_drop=dropped.append)
    for index in range(5):
        log.append(served("abalone", str(index), "2025-03-01T10:00:00+00:00"))
    assert sum(dropped) == 3


def full_disk_at(path) -> None:
    """The day's log file as a link to /dev/full: every write fails with ENOSPC, for real."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to("/dev/full")


def test_lines_a_full_disk_refuses_are_held_and_written_once_it_has_room(tmp_path):
    path = tmp_path / "abalone" / "2025-03-01.jsonl"
    full_disk_at(path)
    log = JsonLinesLog(tmp_path, flush_interval=60)
    for request_id in "abc":
        log.append(served("abalone", request_id, "2025-03-01T10:00:00+00:00"))
    log.flush()
    assert log.held == 3 and "No space left" in log.write_error
    log.append(served("abalone", "d", "2025-03-01T10:00:01+00:00"))
    log.flush()
    assert log.held == 4
    path.unlink()  # space again
    log.flush()
    assert log.held == 0 and log.write_error is None
    assert [r["request_id"] for r in read_records(path).records] == list("abcd")


def test_held_lines_are_bounded_and_drops_are_counted(tmp_path):
    full_disk_at(tmp_path / "abalone" / "2025-03-01.jsonl")
    drops = []
    log = JsonLinesLog(tmp_path, max_queued=2, flush_interval=60, on_drop=drops.append)
    for request_id in "abc":
        log.append(served("abalone", request_id, "2025-03-01T10:00:00+00:00"))
        log.flush()
    assert log.held == 2 and sum(drops) == 1


def test_ready_says_so_while_the_log_cannot_be_written(make_server, iris_model):
    server = make_server(log_flush_interval=0.05)
    publish(server.models_dir, "iris", iris_model, "1")
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    path = server.data_dir / "predictions" / "iris" / f"{day}.jsonl"
    full_disk_at(path)
    with server.client() as http:
        server.wait_until(lambda: http.get("/models/iris").json().get("loaded"))
        sent = http.post("/models/iris/predict", json=IRIS_RECORD, headers={"X-Request-ID": "r1"})
        assert sent.status_code == 200
        server.wait_until(lambda: http.get("/ready").status_code == 503)
        assert "prediction log cannot be written" in http.get("/ready").json()["detail"]
        server.wait_until(lambda: "mlops_prediction_log_held 1.0" in http.get("/metrics").text)
        path.unlink()
        server.wait_until(lambda: http.get("/ready").status_code == 200)
    assert [r["request_id"] for r in read_records(path).records] == ["r1"]
