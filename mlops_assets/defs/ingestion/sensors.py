"""Files in `landing/<ds>/` become partitions of `<ds>/raw`, ingested once per version: one
sensor for every data set."""

import json
from collections.abc import Iterable
from pathlib import Path

from dagster import (
    AddDynamicPartitionsRequest,
    AssetRecordsFilter,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from mlops_assets.defs import keys
from mlops_assets.defs.ingestion.assets import files_partitions
from mlops_assets.defs.resources import SourceFiles
from mlops_assets.lib.sources import DONE_SUFFIX, initial_partition
from mlops_assets.lib.spec import DatasetSpec
from mlops_contract.bundle import sha256_of

DATA_VERSION_TAG = "dagster/data_version"  # the tag a materialization's data version is under


def landed_files(folder: Path) -> list[Path]:
    """Files waiting in a landing folder; hidden and partial (`.part`, `.tmp`) files and done
    markers are not."""
    if not folder.is_dir():
        return []
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file()
        and not path.name.startswith(".")
        and path.suffix not in (".part", ".tmp", DONE_SUFFIX)
    )


def file_versions(
    files: list[Path], known: dict[str, list]
) -> tuple[dict[str, list], list[tuple[Path, str]]]:
    """Each file's [size, mtime, sha256 of this version or None, sha256 last requested], and the
    files complete and new.

    A file is complete once its size and mtime are those of the previous tick (a copy still
    being written changes them), or at once when a `<name>.done` marker is beside it. Only
    then is its checksum computed, so an idle folder costs a stat per file. A file rewritten
    with other bytes under the same name is a new version.
    """
    versions, changed = {}, []
    for path in files:
        stat = path.stat()
        previous = known.get(path.name) or []
        requested = previous[3] if len(previous) > 3 else (previous[2] if previous else None)
        stable = previous[:2] == [stat.st_size, stat.st_mtime_ns]
        done = path.with_name(path.name + DONE_SUFFIX).exists()
        if stable and previous[2] is not None:
            versions[path.name] = [*previous[:3], requested]
        elif stable or done:
            digest = sha256_of(path)
            versions[path.name] = [stat.st_size, stat.st_mtime_ns, digest, digest]
            if digest != requested:
                changed.append((path, digest))
        else:  # new or still changing: wait a tick
            versions[path.name] = [stat.st_size, stat.st_mtime_ns, None, requested]
    return versions, changed


def landing_sensor(specs: Iterable[DatasetSpec]) -> SensorDefinition:
    """One sensor for every data set's landing folder; the cursor holds each folder's versions
    (`files`) and the specs whose own source partition is known to exist (`sources`)."""
    specs = list(specs)
    targets = [keys.asset_key(s.name, name) for s in specs for name in (keys.RAW, keys.VALIDATED)]

    @sensor(
        name="landing",
        asset_selection=targets,
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description="Registers each file in landing/<ds>/ as a partition of <ds>/raw and "
        "requests its ingestion once complete (unchanged for a tick, or a `<name>.done` marker); "
        "a changed file is ingested again. Also adds each spec's own source as a partition.",
    )
    def landing(context: SensorEvaluationContext, source_files: SourceFiles) -> SensorResult:
        known = json.loads(context.cursor) if context.cursor else {}
        seen_files, ensured = known.get("files", {}), set(known.get("sources", []))
        folders, requests, partitions = {}, [], []
        for spec in specs:
            folder = Path(source_files.landing_dir) / spec.name
            files = landed_files(folder)
            known_files = seen_files.get(spec.name) or ingested_before(
                context.instance, spec, files
            )
            versions, changed = file_versions(files, known_files)
            if versions:
                folders[spec.name] = versions
            requests += ingestion_requests(spec, changed)
            wanted = [path.name for path, _ in changed]
            if own_source(spec) not in ensured:
                wanted.insert(0, initial_partition(spec))
            partitions += missing_partitions(context.instance, spec, wanted)
        # each spec's own source is looked up once, not on every tick
        sources = sorted(own_source(spec) for spec in specs)
        cursor = json.dumps({"files": folders, "sources": sources})
        return SensorResult(requests, dynamic_partitions_requests=partitions, cursor=cursor)

    return landing


def ingestion_requests(spec: DatasetSpec, changed: list[tuple[Path, str]]) -> list[RunRequest]:
    """One run per complete new file version: run key = data set, file name and checksum."""
    ds = spec.name
    return [
        RunRequest(
            run_key=f"{ds}/{path.name}@{digest[:16]}",
            partition_key=path.name,
            asset_selection=[keys.asset_key(ds, keys.RAW), keys.asset_key(ds, keys.VALIDATED)],
            tags={
                **keys.run_tags(ds, "landing"),
                "mlops/landing_file": str(path),
                "mlops/sha256": digest,
            },
        )
        for path, digest in changed
    ]


def ingested_before(instance: DagsterInstance, spec: DatasetSpec, files: list[Path]) -> dict:
    """For a folder this sensor has not seen yet (a cursor of the per-data-set sensors before
    them, or a new home over old folders): each file whose partition holds a raw
    materialization, as requested with that materialization's checksum (its data version), so
    a version ingested before is not ingested again."""
    partitions, raw = files_partitions(spec), keys.asset_key(spec.name, keys.RAW)
    known = {}
    for path in files:
        if not instance.has_dynamic_partition(partitions.name, path.name):
            continue
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=raw, asset_partitions=[path.name]), limit=1
        ).records
        version = records[0].asset_materialization.tags.get(DATA_VERSION_TAG) if records else None
        if version:
            known[path.name] = [None, None, None, version]
    return known


def own_source(spec: DatasetSpec) -> str:
    return f"{spec.name}/{initial_partition(spec)}"


def missing_partitions(
    instance: DagsterInstance, spec: DatasetSpec, wanted: list[str]
) -> list[AddDynamicPartitionsRequest]:
    """The partitions of `<ds>/raw` among `wanted` the instance lacks: new landed files, and on
    the first tick the spec's own source (so a fresh home shows it within a tick; the code
    location writes nothing to the instance when it loads)."""
    partitions = files_partitions(spec)
    new_keys = [
        key
        for key in dict.fromkeys(wanted)
        if not instance.has_dynamic_partition(partitions.name, key)
    ]
    return [partitions.build_add_request(new_keys)] if new_keys else []
