"""Request bodies: the JSON files wrk posts, and the records the identical-prediction check
scores."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.serving.plan import Plan
from bench.serving.workspace import Workspace, read_abalone, read_manifest

CHECK_RECORDS = 200


@dataclass(frozen=True)
class Records:
    """Input records keyed by API field name, and the field -> training column mapping."""

    rows: list[dict]
    columns: dict[str, str]

    def as_columns(self, rows: list[dict] | None = None) -> list[dict]:
        return [
            {self.columns[key]: value for key, value in row.items()} for row in rows or self.rows
        ]


def api_records(frame: pd.DataFrame, manifest: dict) -> Records:
    columns = {item["field"]: item["column"] for item in manifest["inputs"]}
    renamed = frame[list(columns.values())].set_axis(list(columns), axis=1)
    return Records(renamed.to_dict("records"), columns)


def abalone_records(source: Path, manifest: dict, count: int, seed: int) -> Records:
    frame = read_abalone(source)
    sample = frame.sample(n=count, random_state=seed, replace=count > len(frame))
    return api_records(sample, manifest)


def iris_records(manifest: dict) -> Records:
    from sklearn.datasets import load_iris

    data = load_iris().data
    columns = [item["column"] for item in manifest["inputs"]]
    return api_records(pd.DataFrame(data, columns=columns), manifest)


def mlflow_body(rows: list[dict]) -> dict:
    """The `/invocations` body of `mlflow models serve` for rows keyed by training column."""
    return {"dataframe_records": rows}


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def write_bodies(folder: Path, name: str, bodies: list[str]) -> Path:
    path = folder / f"{name}.jsonl"
    path.write_text("\n".join(bodies) + "\n")
    return path


def make_bodies(workspace: Workspace, plan: Plan, source: Path) -> tuple[dict[str, Path], Records]:
    """Body files by kind, and the abalone records the identical-prediction check scores."""
    folder = workspace.root / "bodies"
    folder.mkdir(exist_ok=True)
    manifest = read_manifest(workspace, "abalone")[0]
    single = abalone_records(source, manifest, CHECK_RECORDS, seed=1)
    lists = [abalone_records(source, manifest, plan.list_rows, seed=s) for s in (2, 3, 4)]
    bodies = {
        "records": [dumps(row) for row in single.rows],
        "mlflow_records": [dumps(mlflow_body([row])) for row in single.as_columns()],
        "records_list": [dumps(batch.rows) for batch in lists],
        "mlflow_list": [dumps(mlflow_body(batch.as_columns())) for batch in lists],
    }
    if "iris" in plan.datasets:
        iris = iris_records(read_manifest(workspace, "iris")[0])
        bodies["iris"] = [dumps(row) for row in iris.rows]
        bodies["mlflow_iris"] = [dumps(mlflow_body([row])) for row in iris.as_columns()]
    return {kind: write_bodies(folder, kind, items) for kind, items in bodies.items()}, single
