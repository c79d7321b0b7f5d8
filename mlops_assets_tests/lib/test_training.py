"""The candidate search: settings compared on a sample of a large table, the model fit on all."""

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from mlops_assets.lib.training import SCORERS, _cv, families, fit_candidate, preprocessor
from mlops_assets_tests.synthetic import abalone_features


def abalone_like(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    x = abalone_features(rows, seed)
    noise = np.random.default_rng(seed + 1).normal(0, 1, rows)
    return x, pd.Series(x["Length"] * 20 + noise, name="Rings")


def ridge():
    return next(f for f in families("regression") if f.name == "ridge")


def test_a_small_table_is_searched_whole_as_a_plain_grid_search(builtin_specs):
    spec = builtin_specs["abalone"]
    x, y = abalone_like(400)
    candidate = fit_candidate(ridge(), spec, x, y)
    pipeline = Pipeline([("prepare", preprocessor(spec)), ("model", ridge().estimator)])
    grid = {f"model__{k}": v for k, v in ridge().grid.items()}
    plain = GridSearchCV(pipeline, grid, scoring=SCORERS["r2"], cv=_cv(spec)).fit(x, y)
    assert candidate.searched_rows == 400
    assert candidate.params == {k.removeprefix("model__"): v for k, v in plain.best_params_.items()}
    assert candidate.cv_score == plain.best_score_
    assert np.array_equal(candidate.model.predict(x), plain.best_estimator_.predict(x))


def test_a_large_table_is_searched_on_a_sample_and_refit_on_every_row(builtin_specs):
    spec = builtin_specs["abalone"]
    x, y = abalone_like(3000)
    y = y.to_numpy()  # as features.model_inputs gives it
    candidate = fit_candidate(ridge(), spec, x, y, search_rows=500)
    assert candidate.searched_rows == 500
    on_all_rows = Pipeline([("prepare", preprocessor(spec)), ("model", clone(ridge().estimator))])
    on_all_rows.set_params(**{f"model__{k}": v for k, v in candidate.params.items()}).fit(x, y)
    assert np.allclose(candidate.model.predict(x), on_all_rows.predict(x), rtol=0, atol=1e-12)


def test_the_refit_model_is_saved_with_one_job_and_the_same_trees(builtin_specs):
    spec = builtin_specs["abalone"]
    x, y = abalone_like(300)
    forest = next(f for f in families("regression") if f.name == "random_forest")
    candidate = fit_candidate(forest, spec, x, y.to_numpy())
    single = clone(forest.estimator).set_params(
        **candidate.params, n_jobs=1
    )  # same seed, one job: the trees do not depend on the number of jobs
    reference = Pipeline([("prepare", preprocessor(spec)), ("model", single)]).fit(x, y)
    assert candidate.model[-1].n_jobs == 1
    assert np.array_equal(candidate.model.predict(x), reference.predict(x))
