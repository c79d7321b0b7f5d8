import shutil
import subprocess
import sys

from dagster import AssetKey

from mlops_assets.definitions import defs as load_code_location
from mlops_assets.defs.keys import DATASET_TAG, TRIGGER_TAG, run_datasets
from mlops_assets.settings import BUILTIN_DATASETS_DIR

STAGES = ["raw", "validated", "features", "candidates", "champion_model"]


def test_every_spec_gets_the_five_assets_in_its_own_group(settings):
    graph = load_code_location().resolve_asset_graph()
    for ds in ("iris", "diabetes", "abalone"):
        for stage in STAGES:
            node = graph.get(AssetKey([ds, stage]))
            assert node.group_name == ds
        assert graph.get(AssetKey([ds, "validated"])).parent_keys == {AssetKey([ds, "raw"])}
        assert graph.get(AssetKey([ds, "champion_model"])).parent_keys == {
            AssetKey([ds, "candidates"])
        }


def test_gates_are_blocking_asset_checks(settings):
    graph = load_code_location().resolve_asset_graph()
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert {
        ("iris/validated", "schema_matches_spec"),
        ("iris/validated", "quarantine_share_within_threshold"),
        ("iris/validated", "enough_rows"),
        ("iris/validated", "duplicate_share_within_threshold"),
        ("iris/champion_model", "beats_baseline"),
    } <= checks
    for key in graph.asset_check_keys:
        # drift and live performance alarm but must not block: a retrain is the answer
        monitoring = key.name in ("drift_within_threshold", "live_within_holdout")
        assert graph.get_check_spec(key).blocking is not monitoring


def test_warehouse_writers_share_one_pool_and_raw_is_partitioned_by_file(settings):
    defs = load_code_location()
    graph = defs.resolve_asset_graph()
    for stage in STAGES:
        assert graph.get(AssetKey(["abalone", stage])).pools == {"duckdb"}
    raw = graph.get(AssetKey(["abalone", "raw"]))
    assert raw.partitions_def.name == "abalone_files"
    # validated runs with its raw partition; what follows it is automated
    assert graph.get(AssetKey(["abalone", "validated"])).automation_condition is None
    for stage in STAGES[2:]:
        assert graph.get(AssetKey(["abalone", stage])).automation_condition is not None


def test_a_spec_file_is_all_it_takes_to_add_a_data_set(settings, tmp_path, monkeypatch):
    extra = tmp_path / "specs"
    extra.mkdir()
    (extra / "toy.yaml").write_text(
        "name: toy\nsource: toy.csv\ncolumns: [{name: x, type: float}, {name: y, type: int}]\n"
        "target: y\ntask: classification\n"
    )
    monkeypatch.setenv("MLOPS_DATASETS_DIR", str(extra))
    graph = load_code_location().resolve_asset_graph()
    assert all(graph.has(AssetKey(["toy", stage])) for stage in STAGES)


def test_a_spec_in_the_spec_folder_replaces_the_component_of_its_name(
    settings, tmp_path, monkeypatch
):
    extra = tmp_path / "specs"
    extra.mkdir()
    shutil.copy(BUILTIN_DATASETS_DIR / "iris" / "iris.yaml", extra)
    monkeypatch.setenv("MLOPS_DATASETS_DIR", str(extra))
    graph = load_code_location().resolve_asset_graph()  # no asset key defined twice
    for ds in ("iris", "abalone"):
        assert all(graph.has(AssetKey([ds, stage])) for stage in STAGES)
    # the UI's "source" of an asset: the component's defs.yaml, for iris none of it
    assert "datasets/abalone/defs.yaml" in str(graph.get(AssetKey(["abalone", "raw"])).metadata)
    assert "defs.yaml" not in str(graph.get(AssetKey(["iris", "raw"])).metadata)


def test_every_asset_of_a_data_set_says_what_it_is(settings):
    graph = load_code_location().resolve_asset_graph()
    keys = [key for key in graph.get_all_asset_keys() if key.path[0] == "iris"]
    assert len(keys) >= 8
    for key in keys:
        node = graph.get(key)
        assert node.kinds, f"{key.to_user_string()} has no kinds"
        assert node.description and node.description.strip(), f"{key.to_user_string()}"
    assert graph.get(AssetKey(["iris", "champion_model"])).kinds == {"mlflow", "scikit-learn"}


def test_runs_of_a_data_set_carry_its_name(settings):
    defs = load_code_location()
    assert defs.resolve_job_def("iris_build").tags[DATASET_TAG] == "iris"
    automation = defs.resolve_sensor_def("automation")
    assert automation.run_tags == {TRIGGER_TAG: "automation"}


def test_an_automation_run_is_named_by_the_data_sets_of_its_assets():
    assert run_datasets({DATASET_TAG: "iris", TRIGGER_TAG: "landing"}, None) == "iris"
    features = {AssetKey(["iris", "features"]), AssetKey(["abalone", "features"])}
    assert run_datasets({TRIGGER_TAG: "automation"}, features) == "abalone,iris"
    assert run_datasets({}, None) == "-"


def test_one_sensor_or_schedule_of_each_kind_covers_every_data_set(settings):
    defs = load_code_location()
    assert sorted(s.name for s in defs.sensors) == [
        "automation", "labels", "landing", "live_evaluation", "retrain_on_drift"
    ]  # fmt: skip
    assert sorted(s.name for s in defs.schedules) == ["monitoring", "weekly_retrain"]
    graph = defs.resolve_asset_graph()
    covered = defs.resolve_sensor_def("automation").asset_selection.resolve(graph)
    assert {key.path[0] for key in covered} == {"iris", "diabetes", "abalone"}


def test_a_paused_data_set_is_left_out_of_every_sensor_and_schedule(settings, monkeypatch):
    monkeypatch.setenv("MLOPS_PAUSED_DATASETS", " iris , abalone")
    defs = load_code_location()
    graph = defs.resolve_asset_graph()
    covered = defs.resolve_sensor_def("automation").asset_selection.resolve(graph)
    assert {key.path[0] for key in covered} == {"diabetes"}
    landing = defs.resolve_sensor_def("landing").asset_selection.resolve(graph)
    assert {key.path[0] for key in landing} == {"diabetes"}
    retrained = defs.resolve_sensor_def("retrain_on_drift").asset_selection.resolve(graph)
    assert {key.path[0] for key in retrained} == {"diabetes"}
    evaluated = defs.resolve_sensor_def("live_evaluation").asset_selection.resolve(graph)
    assert {key.path[0] for key in evaluated} == {"diabetes"}
    assert graph.has(AssetKey(["iris", "champion_model"]))  # its assets and jobs stay
    assert defs.resolve_job_def("iris_build").tags[DATASET_TAG] == "iris"


def test_the_code_location_loads_without_mlflow(settings):
    """MLflow costs about a second to import; the code server never logs a run."""
    probe = "import sys, mlops_assets.definitions as m; m.defs(); print('mlflow' in sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert loaded.stdout.strip() == "False"
