"""The model card written at every promotion decision: one JSON document and its Markdown view.

It answers what an approver asks: what the model is for, which data trained it (raw files with
sha256, quarantine share, time range), how it compared (candidates, gates), how sure the holdout
number is (bootstrap intervals), which inputs drive it, where it is weak, what it refuses, and
which library versions produced it. The JSON holds the lineage (`mlops_assets.lib.lineage`).
"""

from __future__ import annotations

import json
import platform
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import duckdb
import pandas as pd

from mlops_assets.lib import lineage as lineage_lib
from mlops_assets.lib.evaluation import MIN_SLICE_ROWS, Evaluation
from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.warehouse import quote, table
from mlops_contract.bundle import CARD_JSON_FILE, CARD_MARKDOWN_FILE

LIBRARIES = ("scikit-learn", "numpy", "pandas", "mlflow", "dagster", "duckdb", "joblib")


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "(not installed)"
    return found


def time_range(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> dict[str, dict]:
    """First and last value of each date column in the validated rows."""
    ranges = {}
    for column in (c for c in spec.columns if c.type == "date"):
        low, high = con.execute(
            f"SELECT min({quote(column.name)}), max({quote(column.name)}) "
            f"FROM {table(spec.name, 'validated')}"
        ).fetchone()
        ranges[column.name] = {"from": str(low) if low else None, "to": str(high) if high else None}
    return ranges


def training_data(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> dict[str, Any]:
    partitions = lineage_lib.raw_partitions(con, spec)
    raw = sum(p["raw_rows"] or 0 for p in partitions)
    quarantined = sum(p["quarantined_rows"] or 0 for p in partitions)
    return {
        "partitions": partitions,
        "raw_rows": raw,
        "validated_rows": sum(p["validated_rows"] or 0 for p in partitions),
        "quarantined_rows": quarantined,
        "quarantine_share": quarantined / raw if raw else None,
        "time_range": time_range(con, spec),
    }


def _candidates(candidates: pd.DataFrame, spec: DatasetSpec, chosen: str) -> list[dict]:
    metrics = [c for c in candidates.columns if c.startswith(("cv_", "test_"))]
    return [
        {
            "family": row["family"],
            "chosen": row["family"] == chosen,
            "run_id": row["run_id"],
            **{name: float(row[name]) for name in metrics},
        }
        for _, row in candidates.iterrows()
    ]


def _gates(spec: DatasetSpec, evaluation: Evaluation, decision) -> list[dict]:
    improvement = evaluation.intervals["improvement_over_baseline"]
    gates = [
        {
            "gate": "beats_baseline",
            "passed": decision.beats_baseline,
            "detail": f"improvement over the baseline {improvement['estimate']:.4f} "
            f"(95% interval {improvement['low']:.4f} to {improvement['high']:.4f}), "
            f"margin {spec.gates.baseline_margin}",
        }
    ]
    if evaluation.slice_gate is not None:
        gate = evaluation.slice_gate
        gates.append({"gate": "max_slice_gap", "passed": gate.passed, "detail": gate.reason})
    gates.append({"gate": "promotion", "passed": decision.promote, "detail": decision.reason})
    return gates


def _limitations(spec: DatasetSpec, evaluation: Evaluation) -> list[str]:
    notes = []
    for rule in spec.input_rules:
        refused = []
        if rule.minimum is not None or rule.maximum is not None:
            refused.append(f"outside [{rule.minimum}, {rule.maximum}]")
        if rule.allowed is not None:
            refused.append(f"not one of {list(rule.allowed)}")
        if not rule.nullable:
            refused.append("missing")
        if refused:
            notes.append(f"`{rule.name}` is rejected (422) when {' or '.join(refused)}")
    interval = evaluation.intervals[evaluation.metric]
    notes.append(
        f"the holdout has {evaluation.holdout_rows} rows: {evaluation.metric} is "
        f"{interval['estimate']:.4f} within {interval['low']:.4f} to {interval['high']:.4f} (95%)"
    )
    slices = evaluation.slices
    small = [f"{s['feature']} {s['slice']}" for s in slices if s["rows"] < MIN_SLICE_ROWS]
    if small:
        notes.append(f"slices under {MIN_SLICE_ROWS} holdout rows are not judged: {small}")
    if evaluation.metric == "test_r2":
        notes.append("r2 inside a numeric bin is lower by construction (a narrower target range)")
    return notes


def build_card(
    spec: DatasetSpec,
    best,
    candidates: pd.DataFrame,
    evaluation: Evaluation,
    decision,
    registered_version: str | None,
    promoted_in_run: str,
    training: dict[str, Any],
) -> dict[str, Any]:
    return {
        "model": spec.name,
        "registered_version": registered_version,
        "family": best["family"],
        "created_at": datetime.now(UTC).isoformat(),
        "intended_use": spec.description or f"predict {spec.target} ({spec.task})",
        "task": spec.task,
        "target": spec.target,
        "data": {
            "source": spec.source,
            "license": spec.license,
            "columns": [
                {"name": c.name, "field": c.field, "type": c.type, "description": c.description}
                for c in spec.feature_columns
            ],
        },
        "training_data": training,
        "candidates": _candidates(candidates, spec, best["family"]),
        "gates": _gates(spec, evaluation, decision),
        "evaluation": evaluation.as_dict(),
        "limitations": _limitations(spec, evaluation),
        "libraries": library_versions(),
        "lineage": lineage_lib.lineage(
            spec, best, registered_version, promoted_in_run, training["partitions"]
        ),
    }


def card_files(con: duckdb.DuckDBPyConnection, spec: DatasetSpec, best, candidates, evaluation,
               decision, registered_version, promoted_in_run) -> dict[str, bytes]:  # fmt: skip
    """The card as bundle files: `card.json` (with the lineage) and `card.md`."""
    card = build_card(
        spec, best, candidates, evaluation, decision, registered_version, promoted_in_run,
        training_data(con, spec),
    )  # fmt: skip
    return {
        CARD_JSON_FILE: json.dumps(card, indent=2, default=str).encode(),
        CARD_MARKDOWN_FILE: render_markdown(card).encode(),
    }


def log_to_mlflow(run_id: str, files: dict[str, bytes]) -> None:
    """The card files as artifacts of the candidate's MLflow run (under `model_card/`)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    for name, content in files.items():
        client.log_text(run_id, content.decode(), f"model_card/{name}")


def _table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "(none)\n"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value).replace("|", "\\|")


def render_markdown(card: dict[str, Any]) -> str:
    evaluation, training = card["evaluation"], card["training_data"]
    metric = evaluation["metric"]
    intervals = [{"metric": name, **values} for name, values in evaluation["intervals"].items()]
    share = training["quarantine_share"]
    sections = [
        f"# Model card: {card['model']} v{card['registered_version'] or '(not registered)'}\n",
        f"{card['family']}, {card['task']} of `{card['target']}`; created {card['created_at']}.\n",
        f"## Intended use\n\n{card['intended_use']}\n",
        f"## Data\n\nSource `{card['data']['source']}`"
        + (f", license {card['data']['license']}" if card["data"]["license"] else "")
        + ".\n\n"
        + _table(card["data"]["columns"], ["field", "name", "type", "description"]),
        "## Training data\n\n"
        f"{training['raw_rows']} raw rows, {training['validated_rows']} validated, "
        f"{training['quarantined_rows']} quarantined"
        + (f" ({share:.2%})" if share is not None else "")
        + "".join(f"; {c} from {r['from']} to {r['to']}" for c, r in training["time_range"].items())
        + ".\n\n"
        + _table(
            training["partitions"],
            ["partition", "file_name", "sha256", "raw_rows", "quarantined_rows", "loaded_at"],
        ),
        "## Candidates\n\n"
        + _table(card["candidates"], list(card["candidates"][0]) if card["candidates"] else []),
        "## Gates\n\n" + _table(card["gates"], ["gate", "passed", "detail"]),
        f"## Metrics (95% bootstrap intervals, {evaluation['bootstrap']['resamples']} resamples, "
        f"{evaluation['holdout_rows']} holdout rows)\n\n"
        + _table(intervals, ["metric", "estimate", "low", "high"]),
        f"## Importance (permutation, drop in {metric})\n\n"
        + _table(evaluation["importance"], ["field", "mean", "std"]),
        f"## Slices ({metric}; gap = how far it trails the overall value)\n\nWorst:\n\n"
        + _table(evaluation["worst_slices"], ["feature", "slice", "rows", "value", "gap"])
        + "\nAll:\n\n"
        + _table(evaluation["slices"], ["feature", "slice", "rows", "value", "gap"]),
        "## Known limitations\n\n" + "".join(f"- {note}\n" for note in card["limitations"]),
        "## Libraries\n\n" + "".join(f"- {k} {v}\n" for k, v in card["libraries"].items()),
        "## Lineage\n\n"
        + "".join(
            f"- {key}: {value}\n"
            for key, value in card["lineage"].items()
            if key != "raw_partitions"
        ),  # fmt: skip
    ]
    return "\n".join(sections)
