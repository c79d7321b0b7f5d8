"""The data-quality gates of `<ds>/validated`: blocking, a failure stops everything downstream."""

from __future__ import annotations

import duckdb
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

from mlops_assets.lib import quality
from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.validation import ValidationSummary

CHECKS = {
    "schema_matches_spec": "The file has exactly the spec's columns.",
    "quarantine_share_within_threshold": "Quarantined share of the partition <= the spec's gate.",
    "enough_rows": "The validated table holds at least the spec's minimum rows.",
    "duplicate_share_within_threshold": "Share of exact duplicate rows <= the spec's gate.",
    "every_line_accounted": (
        "Every line of the landed file below its header is a validated or a quarantined row."
    ),
    "validated_conforms_to_spec": (
        "pandera, from the spec, finds no failure in a sample of the partition's validated rows "
        "(an independent check on the SQL that split the partition)."
    ),
}


def validated_check_specs(key: AssetKey) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(name, asset=key, description=text, blocking=True)
        for name, text in CHECKS.items()
    ]


def _markdown(frame) -> MetadataValue:
    return MetadataValue.md(frame.to_markdown(index=False) if len(frame) else "(none)")


def evaluate_validated_checks(
    con: duckdb.DuckDBPyConnection,
    spec: DatasetSpec,
    partition: str,
    summary: ValidationSummary,
) -> list[AssetCheckResult]:
    gates = spec.gates
    schema = quality.schema_report(quality.file_columns(con, spec.name, partition), spec)
    share = summary.quarantined / summary.rows if summary.rows else 1.0
    duplicates, total = quality.duplicate_share(con, spec)
    duplicate_share = duplicates / total if total else 0.0
    checked, failures = quality.contract_failures(con, spec, partition)
    account = quality.line_account(con, spec, partition)
    return [
        _result(
            "schema_matches_spec",
            schema.ok,
            {
                "missing_columns": schema.missing,
                "unexpected_columns": schema.unexpected,
                "file_columns": schema.file_columns,
            },
        ),
        _result(
            "quarantine_share_within_threshold",
            share <= gates.max_quarantine_share,
            {
                "quarantined_rows": summary.quarantined,
                "rows": summary.rows,
                "quarantined_share": share,
                "threshold": gates.max_quarantine_share,
                "reasons": dict(summary.reasons),
                "sample": _markdown(quality.quarantine_sample(con, spec, partition)),
            },
        ),
        _result(
            "enough_rows",
            total >= gates.min_rows,
            {"validated_rows": total, "min_rows": gates.min_rows},
        ),
        _result(
            "duplicate_share_within_threshold",
            duplicate_share <= gates.max_duplicate_share,
            {
                "duplicate_rows": duplicates,
                "duplicate_share": duplicate_share,
                "threshold": gates.max_duplicate_share,
                "sample": _markdown(quality.duplicate_sample(con, spec)),
            },
        ),
        _result(
            "every_line_accounted",
            account.ok,
            {"lines": account.lines, "validated_or_quarantined": account.accounted},
        ),
        _result(
            "validated_conforms_to_spec",
            failures.empty,
            {"rows_checked": checked, "failures": len(failures), "sample": _markdown(failures[:5])},
        ),
    ]


def _result(name: str, passed: bool, metadata: dict) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=name,
        passed=bool(passed),
        severity=AssetCheckSeverity.ERROR,
        metadata=metadata,
    )
