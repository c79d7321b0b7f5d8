"""Serving follows the champion through a models location that is not a local disk: a real
`mlflow server --serve-artifacts` (SQLite store) holds the bundles, a real server mirrors them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlops_assets.lib.publishing import copy_to_location, publish_document, withdraw_challenger
from mlops_assets_tests.deploy import services
from mlops_assets_tests.live_server import LiveServer, free_port, start_server
from mlops_assets_tests.serving.conftest import IRIS_RECORD, manifest_for, publish
from mlops_contract.bundle import (
    CHALLENGER_FILE,
    DRIFT_FILE,
    MODEL_FILE,
    POINTER_FILE,
    point_to,
    write_bundle,
)
from mlops_contract.drift import drift_document
from mlops_contract.location import (
    LocalLocation,
    LocationError,
    MlflowArtifactsLocation,
    open_location,
)


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("mlflow-artifacts")
    url, server = services.start_mlflow_server(f"sqlite:///{workdir / 'mlflow.db'}", workdir)
    yield url
    server.stop()


@pytest.fixture
def artifacts_url(tracking_server) -> str:
    """A models URL of its own on the shared tracking server."""
    return f"{tracking_server}/api/2.0/mlflow-artifacts/artifacts/models-{uuid.uuid4().hex[:8]}"


def build(tmp_path, model, version: str):
    """A bundle written and verified the way the pipeline writes it, in its own folder."""
    dataset_dir = tmp_path / "pipeline" / "iris"
    bundle_id = f"v{version}-{uuid.uuid4().hex[:8]}"
    write_bundle(dataset_dir, bundle_id, model, manifest_for("iris", version))
    return dataset_dir, bundle_id


@pytest.fixture
def remote_server(tmp_path, artifacts_url) -> Iterator[LiveServer]:
    server = start_server(tmp_path / "replica", models_url=artifacts_url)
    yield server
    server.stop()


def version_served(server: LiveServer) -> str | None:
    answer = httpx.post(f"{server.url}/models/iris/predict", json=IRIS_RECORD, timeout=10)
    return answer.json().get("version") if answer.status_code == 200 else None


def metric_samples(text: str) -> dict[tuple, float]:
    """(name, sorted label pairs) -> value of every sample in a Prometheus exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_http_location_reads_lists_and_writes_mlflow_artifacts(artifacts_url):
    location = open_location(artifacts_url)
    assert isinstance(location, MlflowArtifactsLocation)
    assert location.read("nothing/here.json") is None and location.list_dirs("nothing") == []
    location.write("a/b/c.bin", b"\x00payload")
    assert location.read("a/b/c.bin") == b"\x00payload"
    assert location.list_dirs() == ["a"] and location.list_dirs("a") == ["b"]


def test_a_plain_path_and_file_url_are_local(tmp_path):
    assert isinstance(open_location(str(tmp_path)), LocalLocation)
    location = open_location(f"file://{tmp_path}")
    location.write("iris/current.json", b"{}")
    assert (tmp_path / "iris" / "current.json").read_bytes() == b"{}"


def test_a_replica_follows_the_champion_over_http_and_never_serves_a_broken_bundle(
    tmp_path, iris_model, artifacts_url, remote_server
):
    location = open_location(artifacts_url)
    copy_to_location(location, *build(tmp_path, iris_model, "1"))
    remote_server.wait_until(lambda: version_served(remote_server) == "1", timeout=15)

    started = time.monotonic()
    copy_to_location(location, *build(tmp_path, iris_model, "2"))
    remote_server.wait_until(lambda: version_served(remote_server) == "2", timeout=15)
    assert time.monotonic() - started < 5

    # a bundle whose model does not match its manifest: downloaded, rejected, v2 keeps serving
    dataset_dir, bundle_id = build(tmp_path, iris_model, "3")
    model_file = dataset_dir / "bundles" / bundle_id / MODEL_FILE
    model_file.write_bytes(model_file.read_bytes()[:-10])
    copy_to_location(location, dataset_dir, bundle_id)
    http = remote_server.client()
    remote_server.wait_until(lambda: http.get("/ready").json()["models"]["iris"]["load_error"])
    assert "sha256 mismatch" in http.get("/models/iris").json()["load_error"]
    assert version_served(remote_server) == "2"
    assert 'mlops_model_load_error{model="iris"} 1.0' in http.get("/metrics").text


def test_publishing_to_the_models_folder_itself_changes_nothing(tmp_path, iris_model):
    dataset_dir, bundle_id = build(tmp_path, iris_model, "1")
    pointer = (dataset_dir / POINTER_FILE).read_bytes()
    copy_to_location(str(dataset_dir.parent), dataset_dir, bundle_id)
    copy_to_location(None, dataset_dir, bundle_id)
    assert (dataset_dir / POINTER_FILE).read_bytes() == pointer
    assert [p.name for p in (dataset_dir / "bundles").iterdir()] == [bundle_id]


def test_drift_and_promotion_time_reach_metrics_through_the_location(
    tmp_path, iris_model, artifacts_url, remote_server
):
    location = open_location(artifacts_url)
    copy_to_location(location, *build(tmp_path, iris_model, "5"))
    evaluated_at = datetime(2025, 3, 1, 12, tzinfo=UTC)
    features = {
        "petal_length": {"p_value": 0.001, "psi": 0.4, "drifted": True},
        "sepal_width": {"p_value": 0.7, "psi": 0.01, "drifted": False},
    }
    publish_document(
        location, DRIFT_FILE, drift_document("iris", "5", evaluated_at.isoformat(), True, features)
    )
    http = remote_server.client()
    remote_server.wait_until(lambda: "mlops_drift_psi{" in http.get("/metrics").text, timeout=15)
    samples = metric_samples(http.get("/metrics").text)

    def value(name: str, feature: str | None = None, version: str | None = "5") -> float:
        labels = {"model": "iris", "version": version, "feature": feature}
        return samples[name, tuple(sorted((k, v) for k, v in labels.items() if v is not None))]

    assert value("mlops_drift_p_value", "petal_length") == 0.001
    assert value("mlops_drift_psi", "sepal_width") == 0.01
    assert value("mlops_drift_feature_drifted", "petal_length") == 1
    assert value("mlops_drift_feature_drifted", "sepal_width") == 0
    assert value("mlops_dataset_drift") == 1
    assert (
        value("mlops_drift_evaluated_timestamp_seconds", version=None) == evaluated_at.timestamp()
    )
    promoted = datetime.fromisoformat(manifest_for("iris", "5")["promoted_at"]).timestamp()
    assert value("mlops_champion_promoted_timestamp_seconds") == promoted

    # the next evaluation replaces the series: no stale version or feature is left behind
    copy_to_location(location, *build(tmp_path, iris_model, "6"))
    publish_document(
        location, DRIFT_FILE, drift_document("iris", "6", evaluated_at.isoformat(), False, {})
    )
    remote_server.wait_until(
        lambda: 'mlops_dataset_drift{model="iris",version="6"} 0.0' in http.get("/metrics").text,
        timeout=15,
    )
    text = http.get("/metrics").text
    assert 'version="5"' not in text and "mlops_drift_psi{" not in text


def test_an_unreachable_location_leaves_the_cached_champion_serving(tmp_path, iris_model):
    cache = tmp_path / "replica" / "models"
    publish(cache, "iris", iris_model, "7")  # what an earlier sync left in the cache
    dead = f"http://127.0.0.1:{free_port()}/api/2.0/mlflow-artifacts/artifacts/models"
    server = start_server(tmp_path / "replica", models_url=dead)
    try:
        assert version_served(server) == "7"
        assert server.client().get("/ready").status_code == 200
        assert "Connection refused" in server.service.mirror.error
    finally:
        server.stop()


def test_an_http_url_that_is_not_mlflow_artifacts_is_refused_with_the_expected_form():
    with pytest.raises(LocationError, match="mlflow-artifacts/artifacts/<prefix>"):
        open_location("http://example.invalid/models")


def test_a_replica_follows_the_champion_through_an_fsspec_url(tmp_path, iris_model):
    pytest.importorskip("fsspec")
    url = f"memory://models-{uuid.uuid4().hex[:8]}"  # fsspec's in-process filesystem
    copy_to_location(url, *build(tmp_path, iris_model, "8"))
    assert open_location(url).list_dirs() == ["iris"]
    server = start_server(tmp_path / "replica", models_url=url)
    try:
        assert version_served(server) == "8"
        copy_to_location(url, *build(tmp_path, iris_model, "9"))
        server.wait_until(lambda: version_served(server) == "9", timeout=15)
    finally:
        server.stop()


def test_a_replica_shadows_the_challenger_published_at_the_location_until_it_is_withdrawn(
    tmp_path, iris_model
):
    pytest.importorskip("fsspec")
    url = f"memory://models-{uuid.uuid4().hex[:8]}"
    copy_to_location(url, *build(tmp_path, iris_model, "1"))
    dataset_dir = tmp_path / "pipeline" / "iris"
    challenger_id = f"v2-{uuid.uuid4().hex[:8]}"
    write_bundle(dataset_dir, challenger_id, iris_model, manifest_for("iris", "2"), activate=False)
    point_to(dataset_dir, challenger_id, CHALLENGER_FILE)
    copy_to_location(url, dataset_dir, challenger_id, CHALLENGER_FILE)
    server = start_server(tmp_path / "replica", models_url=url)
    try:
        shadowed = server.service.challengers
        server.wait_until(lambda: shadowed.get("iris") is not None, timeout=15)
        assert shadowed.get("iris").version == "2" and version_served(server) == "1"
        withdraw_challenger(dataset_dir, url)
        server.wait_until(lambda: shadowed.get("iris") is None, timeout=15)
        assert version_served(server) == "1"
    finally:
        server.stop()
