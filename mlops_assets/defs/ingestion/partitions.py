"""The partitions of `<ds>/raw`: one per source file, the spec's own source always among them.

A dynamic partition exists only once it is added to the instance, and Dagster cannot seed one
from code. Loading the code location writes nothing to the instance: the `landing` sensor adds
each spec's own source partition on its first tick (the download itself waits for the first
materialization), and `mlops build` adds the one it builds. Without that, `dagster dev` in a
fresh home would show `<ds>/raw` with no partition and "Materialize all" would have nothing to run.
"""

from __future__ import annotations

from collections.abc import Iterable

from dagster import DagsterInstance, DynamicPartitionsDefinition

from mlops_assets.lib.sources import initial_partition
from mlops_assets.lib.spec import DatasetSpec


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
