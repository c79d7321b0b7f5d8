"""The Dagster code location: one asset group per data set.

A data set comes from a spec file in a spec folder (the built-ins in `mlops_assets/datasets/`,
then `MLOPS_DATASETS_DIR`, overriding by name) or from a `DatasetComponent` in the defs folder
(`mlops_assets/defs/<name>/defs.yaml`, as `dg scaffold defs` writes it). The resources are bound
once, for all of them, and one sensor or schedule of each kind covers every data set that
`MLOPS_PAUSED_DATASETS` does not name. Loading writes nothing to the Dagster instance: the
`landing` sensor adds each spec's own source partition on its first tick.
"""

from __future__ import annotations

import dagster as dg

from mlops_assets.components.dataset import (
    automation_definitions,
    dataset_assets,
    dataset_definitions,
)
from mlops_assets.components.project import component_tree, split_specs
from mlops_assets.defs.executor import executor_from_environment
from mlops_assets.defs.resources import resources_for
from mlops_assets.settings import Settings, load_settings, production_instance_problem

__all__ = ["build_definitions", "dataset_assets", "dataset_definitions", "defs"]


def build_definitions(settings: Settings) -> dg.Definitions:
    tree = component_tree()
    folder_specs, component_specs = split_specs(settings, tree)
    every_spec = {**folder_specs, **component_specs}
    automated = [spec for name, spec in every_spec.items() if name not in settings.paused_datasets]
    return dg.Definitions.merge(
        tree.build_defs(),
        *(dataset_definitions(spec) for spec in folder_specs.values()),
        automation_definitions(automated),
        dg.Definitions(resources=resources_for(settings), executor=executor_from_environment()),
    )


def checked_settings() -> Settings:
    """The settings, once sure a production process is on the production instance."""
    problem = production_instance_problem()
    if problem:
        raise dg.DagsterInvariantViolationError(problem)
    return load_settings()


defs = build_definitions(checked_settings())
