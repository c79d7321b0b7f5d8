"""The Optuna backend of the candidates' search: one TPE study per family, stored in SQLite so a
build killed mid-search resumes its study instead of starting over.

A trial scores one setting on the same folds as the grid (`training._cv`), fold by fold; after
each fold it reports its mean so far, and the median pruner stops a setting whose folds trail the
other trials' on the same folds. That is pruning on the folds, not on boosting iterations.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.pipeline import Pipeline

from mlops_assets.lib.spec import DatasetSpec, Search
from mlops_assets.lib.training import (
    SCORERS,
    SEED,
    Family,
    FloatRange,
    IntRange,
    SearchResult,
    _cv,
    metric_sign,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

PRUNER_STARTUP_TRIALS = 5  # trials always run to the end before any is compared to them
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
FOLD_SCORES = "fold_scores"  # a trial's user attribute: its folds' scores, in metric units


@dataclass(frozen=True)
class TrialReport:
    """A finished trial as the candidate's run records it, scores in the metric's own units."""

    number: int
    params: dict[str, Any]
    pruned: bool
    cv_score: float  # mean over the folds it reached
    fold_scores: list[float]


@dataclass(frozen=True)
class Study:
    """Where a family's study is stored, its name there, and who hears of each finished trial."""

    storage: Path  # an SQLite file, created on first use
    name: str
    on_trial: Callable[[TrialReport], None] | None = None


def study_name(dataset: str, family: str, fingerprint: str) -> str:
    """One study per data set, family and training fingerprint: a rebuild on the same data and
    settings resumes it, new training data starts a new one."""
    return f"{dataset}.{family}.{fingerprint}"


def optuna_search(
    family: Family, spec: DatasetSpec, pipeline: Pipeline, x, y, study: Study
) -> SearchResult:
    """Run the family's study until the spec's budget, counting the trials already stored, is
    spent; the best finished trial's settings."""
    stored = load_study(study)
    fail_interrupted(stored)
    finished = stored.get_trials(deepcopy=False, states=FINISHED)
    trials, seconds = remaining_budget(spec.search, finished)
    if trials != 0 and (seconds is None or seconds > 0):
        # seeded by the count of finished trials: a resumed study does not draw its first
        # random settings again
        stored.sampler = optuna.samplers.TPESampler(seed=SEED + len(finished))
        stored.optimize(
            objective(family, spec, pipeline, x, np.asarray(y)),
            n_trials=trials,
            timeout=seconds,
            callbacks=[reporter(spec, study.on_trial)] if study.on_trial else [],
        )
    return best_result(stored, spec)


def load_study(study: Study) -> optuna.Study:
    study.storage.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(study.storage)) as con:
        # a write-ahead log (a setting the file keeps) commits without rewriting the database:
        # a trial writes several times, and on a busy disk each rollback-journal commit is slow
        con.execute("PRAGMA journal_mode=WAL")
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{study.storage}", engine_kwargs={"connect_args": {"timeout": 30}}
    )
    return optuna.create_study(
        study_name=study.name,
        storage=storage,
        direction="maximize",  # the scorer's value: higher is better for every metric
        sampler=optuna.samplers.TPESampler(seed=SEED),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS),
        load_if_exists=True,
    )


def fail_interrupted(study: optuna.Study) -> None:
    """Trials still RUNNING in storage were cut off by a killed process (one build at a time
    searches a data set): marked FAIL, so they are neither counted nor waited for."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)


def remaining_budget(
    search: Search, finished: list[FrozenTrial]
) -> tuple[int | None, float | None]:
    """(trials, seconds) left of the budget after the stored finished trials; None: no limit."""
    trials = None if search.trials is None else max(search.trials - len(finished), 0)
    if search.seconds is None:
        return trials, None
    spent = sum(trial.duration.total_seconds() for trial in finished if trial.duration)
    return trials, search.seconds - spent


def suggest(trial: optuna.Trial, name: str, dimension: IntRange | FloatRange):
    if isinstance(dimension, IntRange):
        return trial.suggest_int(name, dimension.low, dimension.high, log=dimension.log)
    return trial.suggest_float(name, dimension.low, dimension.high, log=dimension.log)


def objective(family: Family, spec: DatasetSpec, pipeline: Pipeline, x, y: np.ndarray):
    scorer = get_scorer(SCORERS[spec.selection_metric])
    sign = metric_sign(spec)
    folds = list(_cv(spec).split(x, y))

    def score(trial: optuna.Trial) -> float:
        params = {name: suggest(trial, name, space) for name, space in family.space.items()}
        model = clone(pipeline).set_params(**{f"model__{k}": v for k, v in params.items()})
        scores: list[float] = []
        for step, (train, test) in enumerate(folds):
            fitted = clone(model).fit(x.iloc[train], y[train])
            scores.append(float(scorer(fitted, x.iloc[test], y[test])))
            trial.report(float(np.mean(scores)), step)
            if trial.should_prune():
                trial.set_user_attr(FOLD_SCORES, [sign * s for s in scores])
                raise optuna.TrialPruned()
        trial.set_user_attr(FOLD_SCORES, [sign * s for s in scores])
        return float(np.mean(scores))

    return score


def reporter(spec: DatasetSpec, on_trial: Callable[[TrialReport], None]):
    def report(study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state not in FINISHED:
            return
        folds = trial.user_attrs.get(FOLD_SCORES, [])
        on_trial(
            TrialReport(
                trial.number,
                trial.params,
                trial.state == TrialState.PRUNED,
                float(np.mean(folds)) if folds else float("nan"),
                folds,
            )
        )

    return report


def best_result(study: optuna.Study, spec: DatasetSpec) -> SearchResult:
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    if not any(trial.state == TrialState.COMPLETE for trial in finished):
        raise ValueError(f"{spec.name}: study {study.study_name} has no complete trial")
    best = study.best_trial
    score = metric_sign(spec) * float(best.value)
    return SearchResult(dict(best.params), score, list(best.user_attrs[FOLD_SCORES]), len(finished))
