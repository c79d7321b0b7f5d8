"""The Dagster code location: one asset group per data set.

A data set comes from a spec file in a spec folder (the built-ins in `mlops_assets/datasets/`,
then `MLOPS_DATASETS_DIR`, overriding by name) or from a `DatasetComponent` in the defs folder
(`mlops_assets/defs/<name>/defs.yaml`, as `dg scaffold defs` writes it). The resources are bound
once, for all of them.
"""

from __future__ import annotations

import dagster as dg

from mlops_assets.components.dataset import dataset_assets, dataset_definitions
from mlops_assets.components.project import component_tree, split_specs
from mlops_assets.defs.ingestion.partitions import add_source_partitions_on_load
from mlops_assets.defs.resources import resources_for
from mlops_assets.settings import Settings, load_settings

__all__ = ["build_definitions", "dataset_assets", "dataset_definitions", "defs"]


def build_definitions(settings: Settings, *, add_partitions: bool = False) -> dg.Definitions:
    """The definitions; with `add_partitions`, every spec's own source also becomes a partition
    of the instance DAGSTER_HOME names (as the code location does when it loads)."""
    tree = component_tree()
    folder_specs, component_specs = split_specs(settings, tree)
    if add_partitions:
        add_source_partitions_on_load([*folder_specs.values(), *component_specs.values()])
    return dg.Definitions.merge(
        tree.build_defs(),
        *(dataset_definitions(spec) for spec in folder_specs.values()),
        dg.Definitions(resources=resources_for(settings)),
    )


defs = build_definitions(load_settings(), add_partitions=True)
