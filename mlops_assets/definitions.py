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
from mlops_assets.defs.resources import resources_for
from mlops_assets.settings import Settings, load_settings

__all__ = ["build_definitions", "dataset_assets", "dataset_definitions", "defs"]


def build_definitions(settings: Settings) -> dg.Definitions:
    tree = component_tree()
    folder_specs, _ = split_specs(settings, tree)
    return dg.Definitions.merge(
        tree.build_defs(),
        *(dataset_definitions(spec) for spec in folder_specs.values()),
        dg.Definitions(resources=resources_for(settings)),
    )


defs = build_definitions(load_settings())
