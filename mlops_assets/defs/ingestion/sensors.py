"""Files in `landing/<ds>/` become partitions of `<ds>/raw`, ingested once per version."""

import json
from pathlib import Path

from dagster import (
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
from mlops_assets.lib.sources import DONE_SUFFIX
from mlops_assets.lib.spec import DatasetSpec
from mlops_contract.bundle import sha256_of


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


def landing_sensor(spec: DatasetSpec) -> SensorDefinition:
    ds = spec.name
    partitions = files_partitions(spec)
    targets = [keys.asset_key(ds, keys.RAW), keys.asset_key(ds, keys.VALIDATED)]

    @sensor(
        name=f"{ds}_landing",
        asset_selection=targets,
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Registers each file in landing/{ds}/ as a partition of {ds}/raw and "
        "requests its ingestion once complete (unchanged for a tick, or a `<name>.done` marker); "
        "a changed file is ingested again.",
    )
    def landing(context: SensorEvaluationContext, source_files: SourceFiles) -> SensorResult:
        folder = Path(source_files.landing_dir) / ds
        known = json.loads(context.cursor) if context.cursor else {}
        versions, changed = file_versions(landed_files(folder), known)
        new_keys = [
            path.name
            for path, _ in changed
            if not context.instance.has_dynamic_partition(partitions.name, path.name)
        ]
        return SensorResult(
            run_requests=[
                RunRequest(
                    run_key=f"{path.name}@{digest[:16]}",
                    partition_key=path.name,
                    tags={
                        **keys.run_tags(ds, "landing"),
                        "mlops/landing_file": str(path),
                        "mlops/sha256": digest,
                    },
                )
                for path, digest in changed
            ],
            dynamic_partitions_requests=[partitions.build_add_request(new_keys)]
            if new_keys
            else [],
            cursor=json.dumps(versions),
        )

    return landing
