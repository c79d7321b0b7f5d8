"""The partitions of `<ds>/raw`: one per source file, the spec's own source always among them.

A dynamic partition exists only once it is added to the instance, and Dagster cannot seed one
from code, so the code location adds each spec's own source partition when it loads (the
download itself waits for the first materialization). Without that, `dagster dev` in a fresh
home would show `<ds>/raw` with no partition and "Materialize all" would have nothing to run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from dagster import DagsterInstance, DynamicPartitionsDefinition

from mlops_assets.lib.locks import exclusive_lock
from mlops_assets.lib.sources import initial_partition
from mlops_assets.lib.spec import DatasetSpec

LOCK_FILE = ".mlops_partitions.lock"  # in DAGSTER_HOME: code server, daemon and runs load at once

log = logging.getLogger(__name__)


def files_partitions(spec: DatasetSpec) -> DynamicPartitionsDefinition:
    return DynamicPartitionsDefinition(name=f"{spec.name}_files")


def add_source_partitions(specs: Iterable[DatasetSpec], instance: DagsterInstance) -> list[str]:
    """Add each spec's own source partition the instance does not have yet; returns them."""
    added = []
    for spec in specs:
        name, partition = files_partitions(spec).name, initial_partition(spec)
        if not instance.has_dynamic_partition(name, partition):
            instance.add_dynamic_partitions(name, [partition])
            added.append(f"{spec.name}/{partition}")
    return added


def add_source_partitions_on_load(specs: Iterable[DatasetSpec]) -> None:
    """`add_source_partitions` on the instance DAGSTER_HOME names, when it names one.

    Loading must not fail for this (the UI would show an error instead of the graph), so a
    failure is logged and loading goes on; `mlops build` adds its partition itself.
    """
    home = os.environ.get("DAGSTER_HOME")
    if not home or not Path(home).is_dir():
        return
    try:
        with exclusive_lock(Path(home) / LOCK_FILE), DagsterInstance.get() as instance:
            added = add_source_partitions(specs, instance)
    except Exception as exc:  # noqa: BLE001 - any storage error; see the docstring
        log.warning("could not add the source partitions to the Dagster instance: %s", exc)
        return
    if added:
        log.info("added source partitions: %s", ", ".join(added))
