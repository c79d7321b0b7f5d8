"""The project's data sets: spec folders (built-ins, then MLOPS_DATASETS_DIR) and components."""

from __future__ import annotations

import dagster as dg

import mlops_assets.defs
from mlops_assets.components.dataset import DatasetComponent
from mlops_assets.lib.spec import DatasetSpec, SpecError, load_specs
from mlops_assets.settings import PROJECT_DIR, Settings


def component_tree() -> dg.ComponentTree:
    # from the module, not pyproject.toml: an installed wheel (the Docker image) has no pyproject
    return dg.ComponentTree.from_module(defs_module=mlops_assets.defs, project_root=PROJECT_DIR)


def component_specs(tree: dg.ComponentTree) -> dict[str, DatasetSpec]:
    specs = {}
    for component in tree.get_all_components(DatasetComponent):
        spec = component.load_dataset_spec()
        if spec.name in specs:
            raise_declared_twice(spec, specs[spec.name])
        specs[spec.name] = spec
    return specs


def raise_declared_twice(spec: DatasetSpec, other: DatasetSpec) -> None:
    raise SpecError(
        f"data set {spec.name!r} is declared twice: {other.path} and {spec.path};"
        " remove or rename one"
    )


def split_specs(settings: Settings, tree: dg.ComponentTree) -> tuple[dict, dict]:
    """(spec-folder specs, component specs); a name in both is an error."""
    folder_specs, components = load_specs(settings.spec_dirs), component_specs(tree)
    for name in sorted(set(folder_specs) & set(components)):
        raise_declared_twice(components[name], folder_specs[name])
    return folder_specs, components


def project_specs(settings: Settings) -> dict[str, DatasetSpec]:
    """Every data set of the code location, by name."""
    folder_specs, components = split_specs(settings, component_tree())
    return {**folder_specs, **components}
