"""The feature set: validated rows plus derived columns, with a deterministic train/test split."""

from __future__ import annotations

import hashlib

import duckdb
import numpy as np
import pandas as pd

from mlops_assets.lib.spec import DatasetSpec, SeriesSpec
from mlops_assets.lib.warehouse import quote, table
from mlops_contract.dates import DATE_PARTS
from mlops_contract.series import SeriesFeature

KEYS = ["_partition", "_source_file", "_row_number"]
HASH_SCALE = 2**64


class DerivedColumnError(ValueError):
    """A spec's derived SQL that cannot run (bad SQL, or it tried to open a file or URL)."""


def query_features(
    con: duckdb.DuckDBPyConnection, spec: DatasetSpec, partition: str | None = None
) -> pd.DataFrame:
    """Validated rows (of one partition, or all) with the spec's derived columns (DuckDB SQL,
    window functions allowed).

    The derived SQL comes from a spec file, so it runs on a separate in-memory connection that
    cannot open files or URLs: a spec can compute columns, not read the machine.
    """
    columns = ", ".join(quote(c.name) for c in spec.columns)
    where = "WHERE _partition = $p" if partition is not None else ""
    validated = con.sql(
        f"SELECT {', '.join(KEYS)}, {columns} FROM {table(spec.name, 'validated')} {where}",
        params={"p": partition} if partition is not None else None,
    ).to_arrow_table()
    with duckdb.connect(":memory:", config={"enable_external_access": False}) as sandbox:
        sandbox.register("validated", validated)
        expressions = [(d.name, d.sql) for d in spec.derived]
        expressions += [(f.name, series_sql(f, spec.series)) for f in spec.series_features]
        derived = "".join(f", ({sql}) AS {quote(name)}" for name, sql in expressions)
        sql = f"SELECT *{derived} FROM validated ORDER BY _partition, _row_number"
        try:
            return sandbox.execute(sql).df()
        except duckdb.Error as exc:
            raise _derived_error(sandbox, spec, exc) from None


def series_sql(feature: SeriesFeature, series: SeriesSpec) -> str:
    """`feature` as DuckDB SQL over the validated rows: the observations of the same entity
    before the row, oldest first, added in the order `SeriesFeature.value` adds them."""
    order = f"PARTITION BY {quote(series.entity)} " if series.entity else ""
    window = f"OVER ({order}ORDER BY {quote(series.time)})"
    column = quote(feature.column)
    if feature.kind == "lag":
        return f"lag({column}, {feature.n}) {window}"
    before = [f"lag({column}, {k}) {window}" for k in range(feature.n, 0, -1)]
    if feature.kind in ("min", "max"):
        return f"list_{feature.kind}([{', '.join(before)}])"
    total = " + ".join(f"coalesce({value}, 0.0)" for value in before)
    count = " + ".join(f"CAST({value} IS NOT NULL AS INTEGER)" for value in before)
    return f"CAST(({total}) AS DOUBLE) / nullif({count}, 0)"


def _derived_error(sandbox, spec: DatasetSpec, error: duckdb.Error) -> Exception:
    """The error naming the derived column that fails on its own (else the query's error)."""
    for column in spec.derived:
        try:
            sandbox.execute(f"SELECT ({column.sql}) FROM validated LIMIT 0").fetchall()
        except duckdb.Error as exc:
            return DerivedColumnError(
                f"derived column {column.name}: {_first_line(exc)}"
                + (" (external access is disabled)" if _is_permission(exc) else "")
            )
    return error


def _is_permission(error: duckdb.Error) -> bool:
    return isinstance(error, duckdb.PermissionException)


def _first_line(error: duckdb.Error) -> str:
    return str(error).strip().splitlines()[0]


def assign_split(frame: pd.DataFrame, spec: DatasetSpec) -> pd.Series:
    """'train' or 'test' per row; the same rows and spec always give the same split.

    Random splits hash each row's identity (partition, row number) with the seed, so a row keeps
    its side when new partitions arrive and test rows never leak into a later training set.
    """
    if spec.split.method == "time":
        order = frame[spec.split.column].rank(method="first")
        cut = np.ceil(len(frame) * (1 - spec.split.test_fraction))
        return pd.Series(np.where(order > cut, "test", "train"), index=frame.index)
    key = hashlib.sha256(str(spec.split.seed).encode()).hexdigest()[:16]
    hashes = pd.util.hash_pandas_object(frame[KEYS[:1] + KEYS[2:]], index=False, hash_key=key)
    unit = hashes.to_numpy(dtype=np.uint64) / HASH_SCALE
    return pd.Series(np.where(unit < spec.split.test_fraction, "test", "train"), index=frame.index)


def build_feature_set(frame: pd.DataFrame, spec: DatasetSpec) -> tuple[pd.DataFrame, int]:
    """Feature table (keys, features, target, _split) and how many rows lacked a target."""
    names = [c.name for c in spec.feature_columns]
    time_column = [spec.split.column] if spec.split.column not in (None, *names) else []
    usable = frame[frame[spec.target].notna()]
    features = usable[KEYS + time_column + names + [spec.target]].copy()
    features["_split"] = assign_split(features, spec)
    return features.reset_index(drop=True), len(frame) - len(usable)


def model_inputs(features: pd.DataFrame, spec: DatasetSpec, split: str):
    """(X, y) of one side of the split, with the column dtypes the model pipeline expects; in
    time order for a time split (its folds and its naive forecast depend on the order)."""
    part = features[features["_split"] == split]
    if spec.split.method == "time":
        part = part.sort_values(spec.split.column, kind="stable")
    x = part[[c.name for c in spec.feature_columns]].copy()
    for column in spec.feature_columns:
        x[column.name] = _as_model_input(x[column.name], column.kind)
    y = part[spec.target]
    if spec.task == "regression":
        y = y.astype("float64")
    else:
        y = y.astype(str) if spec.column(spec.target).type == "category" else y
    return x, y.to_numpy()


HOW_TAKEN = {
    "numeric": "median-imputed, scaled",
    "date": "split into " + ", ".join(DATE_PARTS),
    "categorical": "one-hot (an unseen value: all zeros)",
}


def model_input_table(spec: DatasetSpec) -> str:
    """Markdown: which columns are model inputs, under which API field, and how the model takes
    each in; the columns left out and why."""
    lines = ["| column | API field | type | taken in as |", "|---|---|---|---|"]
    lines += [
        f"| {c.name} | {c.field} | {c.type} | {HOW_TAKEN[c.kind]} |" for c in spec.feature_columns
    ]
    left_out = [c.name for c in spec.all_columns if not c.feature and c.name != spec.target]
    lines.append(f"\nTarget: {spec.target}. Not inputs (`feature: false`): {left_out or 'none'}.")
    return "\n".join(lines)


def _as_model_input(values: pd.Series, kind: str) -> pd.Series:
    """A column with the dtype the server gives it too (`serving.model.to_frame`)."""
    if kind == "numeric":
        return values.astype("float64")
    if kind == "date":
        return pd.to_datetime(values, errors="coerce")
    return values.astype("object").where(values.notna(), None)


def data_version(features: pd.DataFrame) -> str:
    """A content hash of the feature table: equal data gives an equal version."""
    hashes = pd.util.hash_pandas_object(features, index=False).to_numpy()
    return hashlib.sha256(hashes.tobytes()).hexdigest()[:16]
