"""The Dagster code location: the project's defs folder, loaded the way `dg` projects load it.

`mlops_assets/defs/` holds one `DatasetComponent` per data set (the built-ins in `defs/datasets/`;
`dg scaffold defs` adds more), `spec_folder.py` (the data sets of `MLOPS_DATASETS_DIR`, see
components/project.py), `automation/every_dataset.py` (one sensor or schedule of each kind over
every data set that `MLOPS_PAUSED_DATASETS` does not name), `resources.py` (bound once, for all
of them) and `executor.py` (Celery workers when `MLOPS_CELERY_BROKER` is set). Importing this
module builds nothing; loading (`defs()`) writes nothing to the Dagster instance: the `landing`
sensor adds each spec's own source partition on its first tick.
"""

from pathlib import Path

import dagster as dg

from mlops_assets.settings import production_instance_problem


@dg.definitions
def defs() -> dg.Definitions:
    # a production process on the demo's instance (a `.env` overriding DAGSTER_HOME) must fail
    # loudly, before anything runs on the wrong instance
    problem = production_instance_problem()
    if problem:
        raise dg.DagsterInvariantViolationError(problem)
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
