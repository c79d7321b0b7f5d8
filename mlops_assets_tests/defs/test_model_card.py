"""A real build writes the model card and lineage; a served prediction leads back to raw bytes."""

import hashlib
import json
from pathlib import Path

import pytest
from dagster import AssetKey
from mlflow.tracking import MlflowClient

from mlops_assets.build import build_dataset
from mlops_assets.components.project import project_specs
from mlops_assets.settings import load_settings
from mlops_assets_tests.reliability.synthetic_spec import write_dataset

pytestmark = pytest.mark.slow
RECORD = {"x1": 0.5, "x2": -1.0, "group": "b", "x_sum": -0.5}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_synth(tmp_path, monkeypatch, instance, gates: str = ""):
    """Build the synthetic spec; `gates` replaces its gates line."""
    specs = tmp_path / "specs"
    spec_file = write_dataset(specs, rows=1200)
    if gates:
        text = spec_file.read_text().replace("gates: {min_rows: 100, baseline_margin: 0.05}", gates)
        spec_file.write_text(text)
    monkeypatch.setenv("MLOPS_DATASETS_DIR", str(specs))
    settings = load_settings()
    spec = project_specs(settings)["synth"]
    outcome = build_dataset(spec, settings, instance)
    assert outcome.success, outcome.describe()
    return settings, specs


def test_a_served_prediction_leads_back_to_the_raw_file_bytes(
    settings, instance, tmp_path, monkeypatch, make_server
):
    settings, specs = build_synth(tmp_path, monkeypatch, instance)
    server = make_server(settings.data_dir)
    with server.client() as client:
        server.wait_until(lambda: client.get("/ready").status_code == 200)
        served = client.post("/models/synth/predict", json=RECORD).json()
        lineage = client.get("/models/synth/lineage").json()
        card = client.get("/models/synth/card", headers={"Accept": "application/json"}).json()
        markdown = client.get("/models/synth/card").text
        described = client.get("/models/synth").json()
    # prediction -> registered version -> MLflow run -> raw files
    assert lineage["registered_version"] == served["version"]
    version = MlflowClient(settings.tracking_uri).get_model_version("synth", served["version"])
    assert version.run_id == lineage["mlflow_run_id"]
    [partition] = lineage["raw_partitions"]
    assert partition["file_name"] == "synth.csv"
    assert sha256(Path(partition["file"])) == partition["sha256"] == sha256(specs / "synth.csv")
    assert lineage["spec_sha256"] == sha256(specs / "synth.yaml")
    assert lineage["bundle_id"] == described["bundle_id"]
    # the card: intervals around the served metric, importance per API field, slices
    interval = card["evaluation"]["intervals"]["test_r2"]
    assert interval["low"] <= described["metrics"]["test_r2"] <= interval["high"]
    assert described["metric_intervals"] == card["evaluation"]["intervals"]
    assert {row["field"] for row in card["evaluation"]["importance"]} == set(RECORD)
    assert card["evaluation"]["importance"][0]["field"] in ("x1", "x2", "x_sum")
    assert card["training_data"]["partitions"][0]["validated_rows"] == 1200
    assert card["training_data"]["quarantine_share"] == 0
    assert [gate["gate"] for gate in card["gates"]] == ["beats_baseline", "promotion"]
    assert "# Model card: synth v" in markdown and partition["sha256"] in markdown
    # the same card is an artifact of the candidate's MLflow run
    client = MlflowClient(settings.tracking_uri)
    logged = client.download_artifacts(
        lineage["mlflow_run_id"], "model_card/card.json", str(tmp_path)
    )
    assert json.loads(Path(logged).read_text())["lineage"] == card["lineage"]


def test_a_failing_slice_gate_registers_a_challenger_and_publishes_nothing(
    settings, instance, tmp_path, monkeypatch
):
    # a gap of 0 can only pass if every group slice is at least as good as the whole holdout
    gates = "slices: [group]\ngates: {min_rows: 100, max_slice_gap: 0}"
    settings, _ = build_synth(tmp_path, monkeypatch, instance, gates)
    assert not (settings.models_dir / "synth" / "current.json").exists()
    client = MlflowClient(settings.tracking_uri)
    challenger = client.get_model_version_by_alias("synth", "challenger")
    assert str(challenger.version) == "1"
    events = instance.fetch_materializations(AssetKey(["synth", "champion_model"]), limit=1).records
    metadata = events[0].asset_materialization.metadata
    assert metadata["promoted"].value is False
    assert metadata["reason"].value.startswith("slice gap: slice group = ")
