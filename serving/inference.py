"""The fitted pipelines this project trains, called without scikit-learn's per-call dispatch.

On a micro-batch of a few dozen rows the dispatch costs more than the arithmetic: a forest sends
every tree through joblib (re-applying the config and the warning filters each time), and a
ColumnTransformer sends each column group the same way. For the shapes `mlops_assets.lib.training`
builds (ColumnTransformer of fitted transformers -> final estimator), `compile_predictor` calls the
fitted parts directly, in the same order and dtypes, so the numbers are identical (tested per
model family). Any other estimator is called as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

Transform = Callable[[pd.DataFrame], np.ndarray]
Columns = Mapping[str, np.ndarray]  # column name -> its values, one 1-d array per column
FOREST_REGRESSORS = (RandomForestRegressor, ExtraTreesRegressor)
FOREST_CLASSIFIERS = (RandomForestClassifier, ExtraTreesClassifier)


@dataclass(frozen=True)
class Predictor:
    """`prepare` turns input rows into the final estimator's features once; `predict` and
    `predict_proba` (None for regressors) take those features. A compiled predictor also has
    `prepare_columns`, the same features from column arrays, without building a DataFrame.
    `labels_of` (forests) gives the predicted labels from the probabilities, as the estimator's
    own predict does, so a classifier's answer needs one pass of the model, not two."""

    prepare: Callable[[pd.DataFrame], object]
    predict: Callable[[object], np.ndarray]
    predict_proba: Callable[[object], np.ndarray] | None
    labels_of: Callable[[np.ndarray], np.ndarray] | None = None
    compiled: bool = False  # preprocessing runs as direct calls
    prepare_columns: Callable[[Columns], np.ndarray] | None = None

    def predict_with_proba(self, features) -> tuple[np.ndarray, np.ndarray]:
        """A classifier's labels and probabilities per label."""
        proba = self.predict_proba(features)
        if self.labels_of is None:
            return self.predict(features), proba
        return self.labels_of(proba), proba


def compile_predictor(estimator) -> Predictor:
    if not isinstance(estimator, Pipeline) or len(estimator.steps) < 2:
        return Predictor(lambda frame: frame, *_final_calls(estimator))
    compiled = _compiled_prepare(estimator)
    if compiled is None:
        return Predictor(estimator[:-1].transform, *_final_calls(estimator[-1]))
    from_frame, from_columns = compiled
    calls = _final_calls(estimator[-1])
    return Predictor(from_frame, *calls, compiled=True, prepare_columns=from_columns)


def _compiled_prepare(pipeline: Pipeline) -> tuple[Transform, Callable] | None:
    """A two-step pipeline's ColumnTransformer as direct calls, from a DataFrame and from column
    arrays, or None when some part is not one `_compiled_step` knows."""
    prepare = pipeline[0]
    if len(pipeline.steps) != 2 or not isinstance(prepare, ColumnTransformer):
        return None
    groups = []
    for _, transformer, columns in prepare.transformers_:
        if (isinstance(transformer, str) and transformer == "drop") or len(columns) == 0:
            continue
        steps = transformer.steps if isinstance(transformer, Pipeline) else [(None, transformer)]
        calls = [_compiled_step(step) for _, step in steps]
        if any(call is None for call in calls):
            return None
        groups.append((list(columns), calls))

    def transform(block_of: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        blocks = []
        for columns, calls in groups:
            data = block_of(columns)
            for call in calls:
                data = call(data)
            blocks.append(data)
        return np.hstack(blocks)

    def from_frame(frame: pd.DataFrame) -> np.ndarray:
        return transform(lambda columns: frame[columns].to_numpy())

    def from_columns(arrays: Columns) -> np.ndarray:
        return transform(lambda columns: _stacked([arrays[name] for name in columns]))

    return from_frame, from_columns


def _stacked(arrays: list[np.ndarray]) -> np.ndarray:
    """Columns side by side, as `frame[columns].to_numpy()` gives them: one dtype stacks as it is;
    mixed dtypes go through pandas, whose common-type rules differ from numpy's."""
    if all(array.dtype == arrays[0].dtype for array in arrays):
        return np.column_stack(arrays)
    return pd.DataFrame(dict(enumerate(arrays))).to_numpy()


def _compiled_step(step) -> Callable[[np.ndarray], np.ndarray] | None:
    if isinstance(step, SimpleImputer):
        return _imputer(step)
    if isinstance(step, StandardScaler):
        return _scaler(step)
    if isinstance(step, OneHotEncoder):
        return _one_hot(step)
    return None


def _imputer(imputer: SimpleImputer):
    """Rows without missing values pass unchanged (as scikit-learn returns them); a batch with
    any missing value goes through the imputer itself."""
    statistics = imputer.statistics_
    numeric = statistics.dtype.kind == "f"
    if imputer.add_indicator or (numeric and np.isnan(statistics).any()):
        return None
    if not (isinstance(imputer.missing_values, float) and np.isnan(imputer.missing_values)):
        return None
    names = getattr(imputer, "feature_names_in_", None)

    def impute(data: np.ndarray) -> np.ndarray:
        data = np.asarray(data, dtype=np.float64 if numeric else object)
        if not pd.isna(data).any():
            return data.copy() if numeric else data
        return imputer.transform(pd.DataFrame(data, columns=names) if names is not None else data)

    return impute


def _scaler(scaler: StandardScaler):
    def scale(data: np.ndarray) -> np.ndarray:
        data = np.array(data, dtype=np.float64)
        if scaler.with_mean:
            data -= scaler.mean_
        if scaler.with_std:
            data /= scaler.scale_
        return data

    return scale


def _one_hot(encoder: OneHotEncoder):
    """Dense one-hot of known categories; an unknown value is a row of zeros ('ignore')."""
    plain = (
        encoder.drop is None
        and encoder.handle_unknown == "ignore"
        and not encoder.sparse_output
        and not getattr(encoder, "_infrequent_enabled", False)
        and not any(pd.isna(c).any() for c in encoder.categories_)
    )
    if not plain:
        return None
    categories = [np.asarray(c)[None, :] for c in encoder.categories_]

    def encode(data: np.ndarray) -> np.ndarray:
        blocks = [(data[:, [j]] == known) for j, known in enumerate(categories)]
        return np.hstack(blocks).astype(encoder.dtype)

    return encode


def _final_calls(final) -> tuple[Callable, Callable | None, Callable | None]:
    """(predict, predict_proba or None, labels_of or None) of the final estimator over prepared
    features."""
    if isinstance(final, FOREST_REGRESSORS) and final.n_outputs_ == 1:
        return _forest_mean(final, lambda values: values[:, 0]), None, None
    if isinstance(final, FOREST_CLASSIFIERS) and final.n_outputs_ == 1:
        proba = _forest_mean(final, lambda values: values[:, : final.n_classes_])

        def labels_of(probabilities: np.ndarray) -> np.ndarray:  # as the forest's predict
            return final.classes_.take(np.argmax(probabilities, 1))

        return (lambda x: labels_of(proba(x))), proba, labels_of
    return final.predict, getattr(final, "predict_proba", None), None


def _forest_mean(forest, output: Callable[[np.ndarray], np.ndarray]) -> Callable:
    """The trees' mean output, summed tree by tree in order as the forest's own method does.

    Each fitted tree's `tree_.predict` is what the tree's own predict / predict_proba returns
    (before `output` picks the columns) once its checks passed; calling it directly skips
    those per-tree checks, which cost more than the arithmetic on a micro-batch."""
    trees = [tree.tree_ for tree in forest.estimators_]

    def mean(features) -> np.ndarray:
        x = np.ascontiguousarray(features, dtype=np.float32)  # the trees' input dtype
        total = 0.0
        for tree in trees:
            total = total + output(tree.predict(x))
        return total / len(trees)

    return mean
