"""Every data set of the project, by name, for the code location and for `mlops`.

A data set is declared one way, a `DatasetComponent` in the defs folder: the built-ins in
`mlops_assets/defs/datasets/<name>/`, the user's wherever `dg scaffold defs` put them. The folder
`MLOPS_DATASETS_DIR` names (specs kept outside the repository, and the tests' and benchmarks'
variants of a built-in) is read the same way in every command, after the components: each spec
file there adds a data set, or replaces the component of the same name, which then builds nothing.
"""

from __future__ import annotations

import dagster as dg

from mlops_assets.components.dataset import DatasetComponent
from mlops_assets.lib.spec import DatasetSpec, SpecError, load_specs
from mlops_assets.settings import PACKAGE_DIR, Settings


def component_tree() -> dg.ComponentTree:
    """The project's defs folder, configured by `[tool.dg.project]` in pyproject.toml (the
    Docker image copies it beside the virtualenv that holds the installed package)."""
    return dg.ComponentTree.for_project(PACKAGE_DIR)


def component_specs(tree: dg.ComponentTree) -> dict[str, DatasetSpec]:
    specs = {}
    for component in tree.get_all_components(DatasetComponent):
        spec = component.dataset_spec
        if spec.name in specs:
            raise SpecError(
                f"data set {spec.name!r} is declared twice: {specs[spec.name].path} and"
                f" {spec.path}; remove or rename one"
            )
        specs[spec.name] = spec
    return specs


def folder_specs(settings: Settings) -> dict[str, DatasetSpec]:
    """The specs of `MLOPS_DATASETS_DIR`, by name (none when it is unset)."""
    return load_specs(settings.datasets_dir) if settings.datasets_dir else {}


def project_specs(
    settings: Settings, tree: dg.ComponentTree | None = None
) -> dict[str, DatasetSpec]:
    """Every data set of the code location, by name."""
    return {**component_specs(tree or component_tree()), **folder_specs(settings)}
