"""Each spec's own source is a partition of `<ds>/raw` from the landing sensor's first tick on;
loading the code location writes nothing to the instance."""

import os
import subprocess
import sys

import pytest
from dagster import AssetKey, DagsterInstance, build_sensor_context

from mlops_assets.definitions import defs as load_code_location
from mlops_assets.defs.ingestion.partitions import add_source_partitions
from mlops_assets.defs.keys import DATASET_TAG
from mlops_assets.defs.resources import resources_for
from mlops_assets.settings import PROJECT_DIR
from mlops_contract.bundle import POINTER_FILE

EXPECTED = {"iris": "iris.csv", "diabetes": "diabetes.csv", "abalone": "abalone.data"}


def raw_partitions(defs, ds, instance) -> list[str]:
    raw = defs.resolve_asset_graph().get(AssetKey([ds, "raw"]))
    return raw.partitions_def.get_partition_keys(dynamic_partitions_store=instance)


def test_loading_writes_nothing_and_the_first_landing_tick_adds_the_sources(settings, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    # a fresh process, as the code server of `dagster dev` or `dg dev` loads it; nothing downloads
    subprocess.run(
        [sys.executable, "-c", "from mlops_assets.definitions import defs; defs()"],
        cwd=PROJECT_DIR,
        env=env,
        check=True,
        timeout=120,
    )
    assert sorted(path.name for path in home.iterdir()) == ["dagster.yaml"]
    assert not settings.sources_dir.exists()
    defs = load_code_location()
    with DagsterInstance.from_config(str(home)) as instance:
        for ds in EXPECTED:
            assert raw_partitions(defs, ds, instance) == []
        resources = {"source_files": resources_for(settings)["source_files"]}
        context = build_sensor_context(instance=instance, resources=resources)
        result = defs.resolve_sensor_def("landing")(context)
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        for ds, partition in EXPECTED.items():
            assert raw_partitions(defs, ds, instance) == [partition]
    assert not settings.sources_dir.exists()


def test_adding_the_source_partitions_twice_keeps_one_each(settings, builtin_specs, instance):
    assert len(add_source_partitions(builtin_specs.values(), instance)) == 3
    assert add_source_partitions(builtin_specs.values(), instance) == []
    assert instance.get_dynamic_partitions("iris_files") == ["iris.csv"]


def test_without_dagster_home_loading_touches_no_instance(settings, tmp_path, monkeypatch, caplog):
    """No DagsterHomeNotSetError, and no instance made in its place: not in the working folder
    (`mlops` would make `./.dagster_home` there), not in the user's home (`~/.dagster`)."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    before = sorted(tmp_path.rglob("*"))
    load_code_location()
    assert sorted(tmp_path.rglob("*")) == before
    assert "DAGSTER_HOME" not in os.environ
    assert "source partitions" not in caplog.text


@pytest.mark.slow
def test_the_build_job_builds_a_data_set_on_its_source_partition(settings, builtin_specs, instance):
    add_source_partitions(builtin_specs.values(), instance)
    job = load_code_location().resolve_job_def("iris_build")
    result = job.execute_in_process(partition_key="iris.csv", instance=instance)
    assert result.success
    assert instance.get_run_by_id(result.run_id).tags[DATASET_TAG] == "iris"
    assert (settings.models_dir / "iris" / POINTER_FILE).is_file()
