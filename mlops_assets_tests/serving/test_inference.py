"""The compiled predictor gives exactly the numbers of the fitted pipeline, for every model family
training builds, including rows that take its fallbacks (missing values, unknown categories)."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor
from sklearn.pipeline import Pipeline

from mlops_assets.lib.training import families, preprocessor
from mlops_assets_tests.serving.conftest import manifest_for
from mlops_assets_tests.synthetic import abalone_features
from mlops_contract.record import manifest_fields
from mlops_contract.validation import compile_fields
from serving.inference import compile_predictor
from serving.model import LoadedModel, to_frame


def scoring_rows() -> pd.DataFrame:
    frame = abalone_features(40, seed=1)
    frame.loc[3, "Sex"] = "X"  # unknown category: a row of zeros
    return frame


def rows_with_missing_values() -> pd.DataFrame:
    frame = scoring_rows()
    frame.loc[5, "Length"] = np.nan
    frame.loc[7, "Sex"] = None
    return frame


def fitted(spec, family, task: str) -> Pipeline:
    train = abalone_features(300, seed=0)
    rings = train["Length"] * 20 + np.random.default_rng(2).normal(0, 1, len(train))
    target = rings if task == "regression" else pd.cut(rings, 3, labels=["young", "adult", "old"])
    estimator = clone(family.estimator)
    if "n_estimators" in estimator.get_params():
        estimator.set_params(n_estimators=12)
    pipeline = Pipeline([("prepare", preprocessor(spec)), ("model", estimator)])
    return pipeline.fit(train, np.asarray(target))


CASES = [(task, family) for task in ("regression", "classification") for family in families(task)]


@pytest.mark.parametrize(("task", "family"), CASES, ids=[f"{t}-{f.name}" for t, f in CASES])
@pytest.mark.parametrize("rows", [scoring_rows, rows_with_missing_values])
def test_compiled_predictor_matches_the_pipeline_exactly(builtin_specs, task, family, rows):
    pipeline = fitted(builtin_specs["abalone"], family, task)
    predictor = compile_predictor(pipeline)
    frame = rows()
    features = predictor.prepare(frame)
    assert predictor.compiled
    assert np.array_equal(predictor.predict(features), pipeline.predict(frame))
    if task == "classification":
        assert np.array_equal(predictor.predict_proba(features), pipeline.predict_proba(frame))


def test_an_unknown_pipeline_shape_is_called_as_it_is(builtin_specs):
    pipeline = fitted(builtin_specs["abalone"], families("regression")[0], "regression")
    wrapped = Pipeline([("inner", pipeline)])
    predictor = compile_predictor(wrapped)
    frame = scoring_rows()
    assert not predictor.compiled
    assert np.array_equal(predictor.predict(predictor.prepare(frame)), pipeline.predict(frame))


EXTRA_TREES = [
    ("regression", ExtraTreesRegressor(n_estimators=12, random_state=0)),
    ("classification", ExtraTreesClassifier(n_estimators=12, random_state=0)),
]


@pytest.mark.parametrize(("task", "estimator"), EXTRA_TREES, ids=["regression", "classification"])
@pytest.mark.parametrize("rows", [scoring_rows, rows_with_missing_values])
def test_extra_trees_called_tree_by_tree_match_the_pipeline_exactly(
    builtin_specs, task, estimator, rows
):
    pipeline = fitted(builtin_specs["abalone"], SimpleNamespace(estimator=estimator), task)
    predictor = compile_predictor(pipeline)
    frame = rows()
    features = predictor.prepare(frame)
    assert np.array_equal(predictor.predict(features), pipeline.predict(frame))
    if task == "classification":
        assert np.array_equal(predictor.predict_proba(features), pipeline.predict_proba(frame))


def validated_rows(frame: pd.DataFrame, fields) -> list[list]:
    """The frame's records as validation hands them to the model: field order, None for null."""
    records = frame.to_dict("records")
    return [[None if pd.isna(r[f.column]) else r[f.column] for f in fields] for r in records]


@pytest.mark.parametrize(("task", "family"), CASES, ids=[f"{t}-{f.name}" for t, f in CASES])
@pytest.mark.parametrize("rows", [scoring_rows, rows_with_missing_values])
def test_served_rows_skip_the_dataframe_and_match_the_pipeline_exactly(
    builtin_specs, task, family, rows
):
    pipeline = fitted(builtin_specs["abalone"], family, task)
    fields = compile_fields(manifest_fields(manifest_for("abalone", "1")))
    labels = tuple(str(c) for c in pipeline.classes_) if task == "classification" else None
    model = LoadedModel("abalone", {"version": "1"}, fields, pipeline, labels)
    served = validated_rows(rows(), fields)
    frame = to_frame(served, fields)
    prediction = model.predict(served)
    assert model.predictor.prepare_columns is not None
    assert np.array_equal(prediction.values, pipeline.predict(frame))
    if task == "classification":
        got = np.array([list(row.values()) for row in prediction.probabilities])
        assert np.array_equal(got, pipeline.predict_proba(frame))
