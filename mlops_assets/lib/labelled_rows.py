"""Labelled requests as training rows: what a live drop can be retrained on.

A served request carries the model's inputs and its label the target, so together they are a row
of the data set's source file. Written as a file in `landing/<ds>/`, it becomes a raw partition
like any landed file (sha256, validation, quarantine), and the retrain that follows learns from
what the champion got wrong, with the file's name as its lineage.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from mlops_assets.lib.labels import INPUT_PREFIX, matched_sql
from mlops_assets.lib.sources import DONE_SUFFIX
from mlops_assets.lib.spec import Column, DatasetSpec
from mlops_assets.lib.warehouse import quote, table
from mlops_contract.location import LocalLocation


def missing_columns(spec: DatasetSpec) -> list[str]:
    """The source file's columns that neither a request nor its label carries and that may not
    be left empty: with any, labelled requests cannot be training rows."""
    carried = {rule.column for rule in spec.input_rules} | {spec.target}
    return [c.name for c in spec.columns if c.name not in carried and not c.nullable]


def new_rows_sql(spec: DatasetSpec) -> str:
    """The distinct labelled requests of version `$v` served on day `$d` that are not rows of
    `<ds>.validated` already (same values, same target): only those have something to teach."""
    carried = {rule.column for rule in spec.input_rules}
    compared = [c.name for c in spec.columns if c.name in carried]
    inputs = ", ".join(quote(INPUT_PREFIX + name) for name in compared)
    same = " AND ".join(
        [f"v.{quote(n)} IS NOT DISTINCT FROM m.{quote(INPUT_PREFIX + n)}" for n in compared]
        + [f"v.{quote(spec.target)} IS NOT DISTINCT FROM m.actual"]
    )
    return (
        f"SELECT DISTINCT {inputs}, actual FROM ({matched_sql(spec, with_inputs=True)}) m "
        "WHERE version = $v AND CAST(timezone('UTC', timestamp) AS DATE) = CAST($d AS DATE) "
        f"AND NOT EXISTS (SELECT 1 FROM {table(spec.name, 'validated')} v WHERE {same})"
    )


def source_rows(spec: DatasetSpec, labelled: pd.DataFrame) -> pd.DataFrame:
    """`labelled` (`lib.labels.matched_sql(with_inputs=True)`: the record's inputs as
    `input:<column>`, the label as `actual`) as rows of the source file: its columns in file
    order, a column no request carries left empty."""
    empty = [None] * len(labelled)
    columns = {}
    for column in spec.columns:
        if column.name == spec.target:
            columns[column.name] = labelled["actual"].tolist()
        else:
            columns[column.name] = labelled.get(INPUT_PREFIX + column.name, empty)
    return pd.DataFrame(columns)


def _text(value, column: Column, missing: str) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return missing
    if column.type == "date":
        day = pd.Timestamp(value)
        return day.strftime(column.format) if column.format else day.date().isoformat()
    if column.type == "bool":
        return "true" if value else "false"
    return str(int(value)) if column.type == "int" else str(value)


def source_text(spec: DatasetSpec, rows: pd.DataFrame) -> str:
    """The rows as the spec reads its source: its delimiter and quote, a header unless the spec
    reads none, an empty value as its first NA marker."""
    missing = spec.read.na_values[0] if spec.read.na_values else ""
    buffer = io.StringIO()
    writer = csv.writer(
        buffer, delimiter=spec.read.delimiter, quotechar=spec.read.quote, lineterminator="\n"
    )
    if spec.read.header is not False:
        writer.writerow([c.name for c in spec.columns])
    for values in rows.itertuples(index=False):
        writer.writerow([_text(v, c, missing) for v, c in zip(values, spec.columns, strict=True)])
    return buffer.getvalue()


def land(folder: Path, name: str, text: str) -> Path | None:
    """Write `text` as `folder/name` once, whole (written aside as a hidden file the landing
    sensor passes over, synced, renamed), then mark it done; None when it was landed before."""
    path = folder / name
    if path.exists():
        return None
    LocalLocation(folder).write(name, text.encode())
    path.with_name(name + DONE_SUFFIX).touch()
    return path
