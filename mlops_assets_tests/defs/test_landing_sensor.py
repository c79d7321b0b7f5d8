"""The landing sensor: each file version is ingested once, a changed one again, bad ones alone."""

import json
import os

import pytest
from dagster import AssetKey, DagsterInstance, build_sensor_context, materialize

from mlops_assets.build import failures_of
from mlops_assets.components.dataset import dataset_assets
from mlops_assets.defs.ingestion.sensors import landing_sensor
from mlops_assets.defs.resources import resources_for
from mlops_contract.bundle import sha256_of

HEADER = "sepal_length,sepal_width,petal_length,petal_width,species"


@pytest.fixture
def iris(builtin_specs):
    return builtin_specs["iris"]


@pytest.fixture
def landing(settings, iris):
    folder = settings.landing_dir / "iris"
    folder.mkdir(parents=True)
    return folder


def tick(sensor, instance, settings, cursor=None):
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"source_files": resources_for(settings)["source_files"]},
    )
    result = sensor(context)
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def settled(sensor, instance, settings, cursor=None):
    """Two ticks: the first sees the files, the second finds them unchanged, so complete."""
    first = tick(sensor, instance, settings, cursor)
    return tick(sensor, instance, settings, first.cursor)


def test_new_same_and_changed_files(settings, iris, landing):
    sensor = landing_sensor([iris])
    with DagsterInstance.ephemeral() as instance:
        (landing / "day1.csv").write_text(f"{HEADER}\n5.1,3.5,1.4,0.2,setosa\n")
        (landing / ".hidden.csv").write_text("ignored")
        (landing / "day2.csv.part").write_text("still being copied")
        first = settled(sensor, instance, settings)
        assert [r.partition_key for r in first.run_requests] == ["day1.csv"]
        assert instance.get_dynamic_partitions("iris_files") == ["iris.csv", "day1.csv"]

        again = tick(sensor, instance, settings, first.cursor)
        assert again.run_requests == []  # same file, nothing to do

        (landing / "day1.csv").write_text(f"{HEADER}\n6.1,2.8,4.7,1.2,versicolor\n")
        os.utime(landing / "day1.csv", ns=(1, 1))  # a new mtime even on coarse clocks
        changed = settled(sensor, instance, settings, again.cursor)
        [request] = changed.run_requests
        assert request.partition_key == "day1.csv"
        assert request.run_key != first.run_requests[0].run_key  # a new version, not a skip
        assert instance.get_dynamic_partitions("iris_files") == ["iris.csv", "day1.csv"]

        os.utime(landing / "day1.csv", ns=(2, 2))  # touched, same bytes: not a new version
        touched = settled(sensor, instance, settings, changed.cursor)
        assert touched.run_requests == []
        assert set(json.loads(touched.cursor)["files"]["iris"]) == {"day1.csv"}


def test_one_sensor_watches_every_data_set_and_adds_their_own_sources(
    settings, builtin_specs, landing
):
    """The same file in two folders is two versions: one run each, run keys apart."""
    abalone_folder = settings.landing_dir / "abalone"
    abalone_folder.mkdir()
    for folder in (landing, abalone_folder):
        (folder / "day1.csv").write_text("same bytes\n")
        (folder / "day1.csv.done").touch()
    sensor = landing_sensor(builtin_specs.values())
    assert sensor.name == "landing"
    with DagsterInstance.ephemeral() as instance:
        result = tick(sensor, instance, settings)
        requests = {r.tags["mlops/dataset"]: r for r in result.run_requests}
        assert set(requests) == {"iris", "abalone"}
        assert requests["iris"].run_key != requests["abalone"].run_key
        assert requests["iris"].asset_selection == [
            AssetKey(["iris", "raw"]),
            AssetKey(["iris", "validated"]),
        ]
        # a fresh home shows each spec's own source within one tick; the next adds nothing
        assert instance.get_dynamic_partitions("diabetes_files") == ["diabetes.csv"]
        assert instance.get_dynamic_partitions("abalone_files") == ["abalone.data", "day1.csv"]
        assert tick(sensor, instance, settings, result.cursor).dynamic_partitions_requests == []


def test_a_version_ingested_before_this_sensor_is_not_ingested_again(settings, iris, landing):
    """Upgrading from the per-data-set sensors (their cursors are not this one's): a landed file
    whose partition already holds its bytes is known, a changed one is a new version."""
    rows = [f"{4 + i / 100:.2f},3.5,1.4,0.2,setosa" for i in range(120)]
    (landing / "old.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("iris_files", ["old.csv"])
        raw = dataset_assets(iris)[0]
        resources = resources_for(settings)
        assert materialize([raw], instance=instance, resources=resources, partition_key="old.csv")
        first = settled(landing_sensor([iris]), instance, settings)
        assert first.run_requests == []
        (landing / "old.csv").write_text("\n".join([HEADER, *rows[:110]]) + "\n")
        os.utime(landing / "old.csv", ns=(4, 4))
        changed = settled(landing_sensor([iris]), instance, settings, first.cursor)
        assert [r.partition_key for r in changed.run_requests] == ["old.csv"]


def test_a_file_still_being_written_waits_until_it_stops_changing(settings, iris, landing):
    sensor = landing_sensor([iris])
    path = landing / "slow.csv"
    with DagsterInstance.ephemeral() as instance:
        path.write_text(f"{HEADER}\n5.1,3.5,1.4,0.2,setosa\n5.0,3.4")  # a copy half-way
        seen = tick(sensor, instance, settings)
        assert seen.run_requests == []
        with path.open("a") as handle:
            handle.write(",1.5,0.2,setosa\n")
        os.utime(path, ns=(3, 3))
        grown = tick(sensor, instance, settings, seen.cursor)
        assert grown.run_requests == []  # it changed since the last tick: still being written
        [request] = tick(sensor, instance, settings, grown.cursor).run_requests
        assert request.tags["mlops/sha256"] == sha256_of(path)  # the complete file


def test_a_done_marker_makes_a_file_ready_at_once(settings, iris, landing):
    (landing / "day1.csv").write_text(f"{HEADER}\n5.1,3.5,1.4,0.2,setosa\n")
    (landing / "day1.csv.done").touch()
    with DagsterInstance.ephemeral() as instance:
        result = tick(landing_sensor([iris]), instance, settings)
    assert [r.partition_key for r in result.run_requests] == ["day1.csv"]  # not the marker


def test_a_bad_file_fails_alone_and_names_itself(settings, iris, landing):
    rows = [f"{4 + i / 100:.2f},3.5,1.4,0.2,setosa" for i in range(120)]  # enough for the gate
    (landing / "good.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    (landing / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    with DagsterInstance.ephemeral() as instance:
        result = settled(landing_sensor([iris]), instance, settings)
        assert {r.partition_key for r in result.run_requests} == {"good.csv", "photo.png"}
        outcomes = {
            request.partition_key: materialize(
                dataset_assets(iris)[:2],
                instance=instance,
                resources=resources_for(settings),
                partition_key=request.partition_key,
                raise_on_error=False,
            )
            for request in result.run_requests
        }
    assert outcomes["good.csv"].success
    assert not outcomes["photo.png"].success
    assert "photo.png" in " ".join(failures_of(outcomes["photo.png"]))


def test_every_line_accounted_is_a_blocking_gate_of_validated(settings, iris, landing):
    rows = [f"{4 + i / 100:.2f},3.5,1.4,0.2,setosa" for i in range(120)]
    lines = [HEADER, *rows[:118], '5.0,"3.4,1.5,0.2,setosa', *rows[118:]]  # a quote never closed
    (landing / "quote.csv").write_text("\n".join(lines) + "\n")
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("iris_files", ["quote.csv"])
        result = materialize(
            dataset_assets(iris)[:2],
            instance=instance,
            resources=resources_for(settings),
            partition_key="quote.csv",
            raise_on_error=False,
        )
    [gate] = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "every_line_accounted"
    ]
    assert gate.passed and gate.metadata["lines"].value == 121
    spec = next(s for s in dataset_assets(iris)[1].check_specs if s.name == "every_line_accounted")
    assert spec.blocking
