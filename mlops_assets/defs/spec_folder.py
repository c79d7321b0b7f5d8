"""The data sets of the folder `MLOPS_DATASETS_DIR` names (none when it is unset); a spec there
replaces the defs folder's component of the same name (components/project.py)."""

import dagster as dg

from mlops_assets.components.dataset import dataset_definitions
from mlops_assets.components.project import folder_specs
from mlops_assets.settings import load_settings


@dg.definitions
def spec_folder_datasets() -> dg.Definitions:
    specs = folder_specs(load_settings()).values()
    return dg.Definitions.merge(*(dataset_definitions(spec) for spec in specs))
