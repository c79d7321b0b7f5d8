"""A challenger published beside the champion, compared on live requests by
`<ds>/shadow_comparison`, and promoted on live evidence only with enough labelled requests."""

import json

import numpy as np
import pytest
from dagster import materialize
from mlflow.tracking import MlflowClient
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeRegressor

from mlops_assets.build import build_dataset
from mlops_assets.defs.monitoring.assets import monitoring_assets
from mlops_assets.defs.monitoring.labels import labels_asset
from mlops_assets.defs.monitoring.shadow import shadow_comparison_asset
from mlops_assets.defs.resources import resources_for
from mlops_assets.lib import training
from mlops_assets.lib.spec import LiveEvidence
from mlops_assets_tests.defs.test_pipeline import (
    assert_built,
    materialize_champion,
    offer_only_candidate,
    warehouse,
)
from mlops_contract import bundle
from serving.integrity import older_bundles

DAY = "2026-11-23"


def with_live_evidence(spec, min_labelled: int):
    gates = spec.gates.model_copy(
        update={"promote_on_live_evidence": LiveEvidence(min_labelled=min_labelled)}
    )
    return spec.model_copy(update={"gates": gates})


def line(request_id: str, version: str, prediction: float) -> str:
    return json.dumps({"request_id": request_id, "timestamp": f"{DAY}T10:00:00+00:00",
                       "model": "diabetes", "version": version, "input": {},
                       "output": {"prediction": prediction}, "latency_ms": 1.0})  # fmt: skip


def serve(settings, champion: str, challenger: str, start: int, count: int, rng) -> None:
    """`count` requests the champion answered with errors of sd 60 and the challenger scored
    in the shadow with errors of sd 5, and their labels."""
    truth = rng.uniform(50, 300, count)
    ids = [f"r{start + index}" for index in range(count)]
    errors = {champion: rng.normal(0, 60, count), challenger: rng.normal(0, 5, count)}
    folders = {
        champion: settings.predictions_dir,
        challenger: settings.predictions_dir.parent / "shadow",
    }
    for version, folder in folders.items():
        lines = [
            line(i, version, y + e) for i, y, e in zip(ids, truth, errors[version], strict=True)
        ]
        (folder / "diabetes").mkdir(parents=True, exist_ok=True)
        with (folder / "diabetes" / f"{DAY}.jsonl").open("a") as handle:
            handle.write("\n".join(lines) + "\n")
    (settings.labels_dir / "diabetes").mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{i},{y}\n" for i, y in zip(ids, truth, strict=True))
    path = settings.labels_dir / "diabetes" / f"labels-{start}.csv"
    path.write_text("request_id,actual\n" + rows)


def compare(settings, instance, spec):
    resources = resources_for(settings)
    log, _ = monitoring_assets(spec)
    labels, comparison = labels_asset(spec), shadow_comparison_asset(spec)
    assert materialize([log], instance=instance, resources=resources, partition_key=DAY).success
    assert materialize([labels], instance=instance, resources=resources).success
    result = materialize([comparison], instance=instance, resources=resources, partition_key=DAY)
    assert result.success
    [event] = result.asset_materializations_for_node("diabetes__shadow_comparison")
    return {key: value.value for key, value in event.metadata.items()}


@pytest.mark.slow
def test_live_evidence_promotes_the_challenger_once_enough_labels_say_so(
    settings, instance, builtin_specs
):
    spec = with_live_evidence(builtin_specs["diabetes"], min_labelled=60)
    assert_built(build_dataset(spec, settings, instance))
    client = MlflowClient(settings.tracking_uri)
    champion = str(client.get_model_version_by_alias("diabetes", "champion").version)
    dataset_dir = settings.models_dir / "diabetes"
    served_bundle = bundle.read_pointer(dataset_dir)["bundle"]
    weak = DecisionTreeRegressor(max_depth=3, random_state=0)
    offer_only_candidate(settings, spec, Pipeline([("prepare", training.preprocessor(spec)),
                                                   ("model", weak)]))  # fmt: skip
    assert materialize_champion(settings, instance, spec).success
    challenger = str(client.get_model_version_by_alias("diabetes", "challenger").version)
    # the loser is published for the servers' shadow, and the champion's bundle stays
    pointer = bundle.read_pointer(dataset_dir, bundle.CHALLENGER_FILE)
    _, manifest = bundle.read_manifest(dataset_dir, pointer)
    assert manifest["version"] == challenger and manifest["published_as"] == "challenger"
    assert bundle.read_pointer(dataset_dir)["bundle"] == served_bundle

    rng = np.random.default_rng(0)
    serve(settings, champion, challenger, 0, 40, rng)
    too_few = compare(settings, instance, spec)
    assert too_few["promotion"] == "no comparison wins on live evidence"
    assert "too few labelled requests to judge (40 < 60" in too_few["comparisons"]
    assert too_few[f"labelled/v{challenger}_vs_v{champion}"] == 40
    assert str(client.get_model_version_by_alias("diabetes", "champion").version) == champion

    serve(settings, champion, challenger, 40, 40, rng)
    enough = compare(settings, instance, spec)
    assert enough["promotion"].startswith(f"promoted v{challenger} on live evidence: live r2")
    assert enough[f"improvement_low/v{challenger}_vs_v{champion}"] > 0
    assert str(client.get_model_version_by_alias("diabetes", "champion").version) == challenger
    assert "challenger" not in client.get_registered_model("diabetes").aliases
    # only the champion now: its own bundle, the same model, no challenger mark, so it is a
    # fallback like any champion once replaced
    promoted = bundle.load_bundle(dataset_dir)
    shadowed = bundle.load_bundle(dataset_dir, pointer)
    assert promoted.version == challenger and "published_as" not in promoted.manifest
    assert promoted.path.name != pointer["bundle"]
    assert promoted.manifest["files"] == shadowed.manifest["files"]
    assert promoted.path.name in older_bundles(dataset_dir, exclude=served_bundle)
    assert bundle.read_pointer(dataset_dir, bundle.CHALLENGER_FILE) is None
    with warehouse(settings) as con:
        last = con.execute(
            "SELECT version, previous_version, reason, metrics, previous_metrics "
            "FROM diabetes.champion_history ORDER BY promoted_at DESC LIMIT 1"
        ).fetchone()
        compared = con.execute("SELECT count(*) FROM diabetes.shadow_comparison").fetchone()
    assert last[:3] == (challenger, champion, "live evidence")
    numbers, previous = json.loads(last[3]), json.loads(last[4])
    assert numbers["labelled"] == 80 and numbers["improvement_low"] > 0
    assert numbers["live_r2"] > previous["live_r2"]
    assert compared == (1,)  # the day's row replaced, not added
