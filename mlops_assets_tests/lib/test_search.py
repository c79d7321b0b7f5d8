"""The Optuna search backend: the spec's budget, the best trial refit on every row, and a study
that a killed process leaves resumable."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline

from mlops_assets.lib.search import Study, load_study
from mlops_assets.lib.spec import Search, Split, load_spec
from mlops_assets.lib.training import SCORERS, _cv, families, fit_candidate, preprocessor
from mlops_assets.settings import PROJECT_DIR, builtin_spec_path
from mlops_assets_tests.synthetic import abalone_features

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def optuna_spec(trials: int | None = None, seconds: float | None = None):
    abalone = load_spec(builtin_spec_path("abalone"))
    search = Search(backend="optuna", trials=trials, seconds=seconds)
    return abalone.model_copy(update={"search": search})


def regression_data(rows: int = 300):
    x = abalone_features(rows, 0)
    noise = np.random.default_rng(1).normal(0, 1, rows)
    return x, (x["Length"] * 20 + noise).to_numpy()


def family(name: str):
    return next(f for f in families("regression") if f.name == name)


def forest():
    return family("random_forest")


def stored_trials(study: Study, states=FINISHED) -> list:
    storage = f"sqlite:///{study.storage}"
    return optuna.load_study(study_name=study.name, storage=storage).get_trials(states=states)


def test_the_best_trial_is_refit_on_every_row(tmp_path):
    spec = optuna_spec(trials=6)
    x, y = regression_data(600)
    study = Study(tmp_path / "optuna.db", "abalone.ridge.test")
    candidate = fit_candidate(family("ridge"), spec, x, y, search_rows=400, study=study)
    trials = stored_trials(study)
    best = max((t for t in trials if t.value is not None), key=lambda t: t.value)
    assert len(trials) == candidate.trials == 6
    assert candidate.params == best.params and set(best.params) == {"alpha"}
    assert candidate.cv_score == pytest.approx(best.value)  # r2: higher is better, same units
    assert np.mean(candidate.fold_scores) == pytest.approx(candidate.cv_score)
    assert candidate.searched_rows == 400
    ridge = clone(family("ridge").estimator)
    on_all_rows = Pipeline([("prepare", preprocessor(spec)), ("model", ridge)])
    on_all_rows.set_params(model__alpha=best.params["alpha"]).fit(x, y)
    assert np.allclose(candidate.model.predict(x), on_all_rows.predict(x), rtol=0, atol=1e-12)


def test_a_time_split_scores_each_trial_on_its_rolling_origin_folds(tmp_path):
    spec = optuna_spec(trials=3).model_copy(update={"split": Split(method="time", column="Length")})
    x, y = regression_data()
    study = Study(tmp_path / "optuna.db", "abalone.ridge.time")
    candidate = fit_candidate(family("ridge"), spec, x, y, study=study)
    pipeline = Pipeline([("prepare", preprocessor(spec)), ("model", family("ridge").estimator)])
    pipeline.set_params(model__alpha=candidate.params["alpha"])
    same_folds = cross_val_score(pipeline, x, y, cv=_cv(spec), scoring=SCORERS["r2"])
    assert candidate.fold_scores == pytest.approx(list(same_folds), rel=0, abs=1e-12)


def test_each_finished_trial_is_reported_in_the_metrics_units(tmp_path):
    spec = optuna_spec(trials=8).model_copy(update={"metric": "rmse"})
    x, y = regression_data()
    reports = []
    study = Study(tmp_path / "optuna.db", "abalone.ridge.rmse", on_trial=reports.append)
    candidate = fit_candidate(family("ridge"), spec, x, y, study=study)
    assert [r.number for r in reports] == list(range(8))
    complete = [r for r in reports if not r.pruned]
    assert all(len(r.fold_scores) == spec.cv_folds for r in complete)
    assert all(r.cv_score > 0 for r in reports)  # an rmse, not the scorer's negative
    assert candidate.cv_score == min(r.cv_score for r in complete)  # lower is better


def test_a_rerun_counts_the_stored_trials_against_the_budget(tmp_path):
    x, y = regression_data()
    study = Study(tmp_path / "optuna.db", "abalone.ridge.rerun")
    fit_candidate(family("ridge"), optuna_spec(trials=4), x, y, study=study)
    first = stored_trials(study)
    again = fit_candidate(family("ridge"), optuna_spec(trials=4), x, y, study=study)
    assert stored_trials(study) == first and again.trials == 4  # spent: nothing re-run
    # the seconds budget counts the stored trials' time too
    fit_candidate(family("ridge"), optuna_spec(trials=9, seconds=0.001), x, y, study=study)
    assert len(stored_trials(study)) == 4
    fit_candidate(family("ridge"), optuna_spec(trials=6), x, y, study=study)
    assert [t.number for t in stored_trials(study)] == list(range(6))


def test_a_search_killed_mid_study_is_resumed_not_started_over(tmp_path):
    trials = 10
    study = Study(tmp_path / "optuna.db", "abalone.random_forest.crash")
    load_study(study)  # created first, so that polling it does not race the child creating it
    process = subprocess.Popen(
        [sys.executable, "-m", "mlops_assets_tests.lib.search_process", str(study.storage),
         study.name, str(trials)],
        cwd=PROJECT_DIR,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until_stored(study, process, at_least=2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    before = stored_trials(study)
    assert process.returncode == -signal.SIGKILL and 2 <= len(before) < trials

    reports = []
    x, y = regression_data()
    resumed = Study(study.storage, study.name, on_trial=reports.append)
    candidate = fit_candidate(forest(), optuna_spec(trials=trials), x, y, study=resumed)
    after = stored_trials(study)
    assert len(after) == candidate.trials == trials
    assert [t.datetime_complete for t in after[: len(before)]] == [
        t.datetime_complete for t in before
    ]  # the finished trials were kept, not run again
    assert len(reports) == trials - len(before)
    cut_off = stored_trials(study, states=(optuna.trial.TrialState.RUNNING,))
    assert cut_off == []  # a trial the kill cut off is marked failed, not left running


def wait_until_stored(study: Study, process: subprocess.Popen, at_least: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len(stored_trials(study)) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"the search process stored fewer than {at_least} trials")
