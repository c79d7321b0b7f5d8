"""A family's Optuna search in a process of its own, for the crash test to kill:

python -m mlops_assets_tests.lib.search_process STORAGE STUDY TRIALS
"""

import sys
from pathlib import Path

from mlops_assets.lib.search import Study
from mlops_assets.lib.training import fit_candidate
from mlops_assets_tests.lib.test_search import forest, optuna_spec, regression_data

if __name__ == "__main__":
    storage, name, trials = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    x, y = regression_data()
    fit_candidate(forest(), optuna_spec(trials=trials), x, y, study=Study(storage, name))
