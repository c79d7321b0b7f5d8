"""The Dagster code location: the project's defs folder, loaded the way `dg` projects load it.

`mlops_assets/defs/` holds one `DatasetComponent` per data set (the built-ins in `defs/datasets/`;
`dg scaffold defs` adds more), `spec_folder.py` (the data sets of `MLOPS_DATASETS_DIR`, see
components/project.py), `automation/every_dataset.py` (one sensor or schedule of each kind over
every data set that `MLOPS_PAUSED_DATASETS` does not name) and `resources.py` (bound once, for
all of them). Importing this module builds nothing; loading (`defs()`) writes nothing to the
Dagster instance: the `landing` sensor adds each spec's own source partition on its first tick.
"""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
