"""Ground truth: `<ds>/labels` (every label, joined to the prediction log), the sensor that
loads it when label files change, and `<ds>/live_performance` (each version's metrics on its
labelled live predictions, checked against the champion's holdout interval)."""

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    asset,
    sensor,
)

from mlops_assets.defs import keys
from mlops_assets.defs.keys import POOL, asset_key, group_name
from mlops_assets.defs.monitoring import estimates
from mlops_assets.defs.monitoring.assets import PREDICTION_DAYS
from mlops_assets.defs.resources import MlflowTracking, ModelStore, SourceFiles, Warehouse
from mlops_assets.lib import labelled_rows, live
from mlops_assets.lib import labels as labels_lib
from mlops_assets.lib.estimated import ESTIMATED_METRICS
from mlops_assets.lib.publishing import publish_document
from mlops_assets.lib.spec import METRICS, DatasetSpec
from mlops_assets.lib.warehouse import append_rows, table, table_exists, transaction
from mlops_contract.bundle import CARD_JSON_FILE, LIVE_FILE, BundleError, read_current_file
from mlops_contract.drift import live_document

LIVE_CHECK = "live_within_holdout"
# the UTC days whose labelled predictions a labels load changed (metadata of <ds>/labels)
DAYS_TOUCHED = "days_touched"
ADDED_COLUMNS = ("estimated DOUBLE", "estimated_rows BIGINT")
HISTORY_DDL = (
    "day DATE, model VARCHAR, version VARCHAR, metric VARCHAR, estimate DOUBLE, low DOUBLE, "
    "high DOUBLE, labelled BIGINT, served BIGINT, median_delay_s DOUBLE, "
) + ", ".join(ADDED_COLUMNS)


def labels_asset(spec: DatasetSpec):
    ds = spec.name

    @asset(
        key=asset_key(ds, keys.LABELS),
        group_name=group_name(ds),
        deps=[AssetDep(asset_key(ds, keys.PREDICTION_LOG))],
        pool=POOL,
        kinds={"duckdb"},
        description=f"Every label for {ds}'s served predictions (POST /models/{ds}/feedback and "
        f"files in labels/{ds}/) in `{ds}.labels`, the latest per request current and joined "
        f"to `{ds}.prediction_log`; lines that cannot be labels in `{ds}.labels_rejected`.",
    )
    def labels(
        context: AssetExecutionContext, warehouse: Warehouse, source_files: SourceFiles
    ) -> MaterializeResult:
        api, drop = source_files.label_folders(ds)
        files = labels_lib.label_files(api, drop)
        kept, rejected = labels_lib.collect(spec, files, api)
        with warehouse.get_connection() as con:
            before = labels_lib.labelled_days(con, spec)
            summary = labels_lib.store(con, spec, kept, rejected)
            touched = labels_lib.changed_days(before, labels_lib.labelled_days(con, spec))
        if summary.rejected:
            context.log.warning(
                f"{ds}: {summary.rejected} line(s) rejected, see {ds}.labels_rejected"
            )
        return MaterializeResult(
            metadata={
                "files": len(files),
                "labels": summary.labels,
                "current": summary.current,
                "superseded": summary.labels - summary.current,
                "matched": summary.matched,
                "unmatched": summary.current - summary.matched,
                "rejected": summary.rejected,
                "label_coverage": summary.coverage,
                "median_label_delay_s": summary.median_delay_s,
                # read by the live_evaluation sensor: these days' live_performance is stale
                DAYS_TOUCHED: touched,
                "dagster/row_count": summary.labels,
                "dagster/table_name": f"{ds}.labels",
            }
        )

    return labels


def labels_sensor(specs: Iterable[DatasetSpec]) -> SensorDefinition:
    """One sensor for every data set's label files; the cursor holds each data set's state."""
    specs = list(specs)

    @sensor(
        name="labels",
        asset_selection=[asset_key(spec.name, keys.LABELS) for spec in specs],
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description="Loads a data set's labels (<ds>/labels) again when its feedback log or "
        "labels/<ds>/ changed and has stayed the same for a tick (a file still being copied "
        "changes).",
    )
    def labels_changed(context: SensorEvaluationContext, source_files: SourceFiles) -> SensorResult:
        cursor = json.loads(context.cursor) if context.cursor else {}
        requests, waiting, states = [], [], {}
        for spec in specs:
            seen = cursor.get(spec.name, {})
            state = label_files_state(source_files, spec.name)
            requested = seen.get("requested")
            if state is not None and state != requested:
                if state == seen.get("seen"):
                    requests.append(labels_request(spec.name, state))
                    requested = state
                else:
                    waiting.append(spec.name)
            if state is not None or requested is not None:
                states[spec.name] = {"seen": state, "requested": requested}
        return SensorResult(
            run_requests=requests,
            skip_reason=None if requests else labels_skip_reason(waiting),
            cursor=json.dumps(states),
        )

    return labels_changed


def label_files_state(source_files: SourceFiles, ds: str) -> str | None:
    """A digest of the names, sizes and mtimes of a data set's label files; None without any."""
    files = labels_lib.label_files(*source_files.label_folders(ds))
    if not files:
        return None
    stats = [(path.name, path.stat()) for path in files]
    return hashlib.sha256(
        json.dumps([[name, s.st_size, s.st_mtime_ns] for name, s in stats]).encode()
    ).hexdigest()[:16]


def labels_request(ds: str, state: str) -> RunRequest:
    return RunRequest(
        run_key=f"{ds}/labels@{state}",
        asset_selection=[asset_key(ds, keys.LABELS)],
        tags=keys.run_tags(ds, "labels"),
    )


def labels_skip_reason(waiting: list[str]) -> str:
    if waiting:
        return f"label files changed ({', '.join(waiting)}); waiting a tick for them to settle"
    return "no new labels"


def live_performance_asset(spec: DatasetSpec):
    ds = spec.name
    key = asset_key(ds, keys.LIVE_PERFORMANCE)
    metric = spec.selection_metric
    estimated_note = (
        " Beside them the estimated accuracy and macro F1 of all of each version's predictions, "
        "labelled or not, from its probabilities calibrated on the holdout (confidence-based "
        "performance estimation)."
        if spec.task == "classification"
        else ""
    )

    @asset(
        key=key,
        group_name=group_name(ds),
        partitions_def=PREDICTION_DAYS,
        deps=[
            AssetDep(asset_key(ds, keys.LABELS)),
            AssetDep(asset_key(ds, keys.PREDICTION_LOG)),
            AssetDep(asset_key(ds, keys.FEATURES)),
        ],
        pool=POOL,
        kinds={"duckdb"},
        check_specs=[
            AssetCheckSpec(
                LIVE_CHECK,
                asset=key,
                description=f"The champion's live {metric} on the day's labelled "
                "predictions is not worse than the low end of its holdout interval (judged from "
                f"gates.live_min_labels = {spec.gates.live_min_labels} labels on).",
            )
        ],
        description=f"Per model version, {ds}'s metrics on the predictions served on one UTC day "
        f"that have a current label, with a bootstrap interval.{estimated_note} History in "
        f"`{ds}.live_performance`.",
    )
    def live_performance(
        context: AssetExecutionContext,
        warehouse: Warehouse,
        model_store: ModelStore,
        source_files: SourceFiles,
        mlflow: MlflowTracking,  # set up, it points MLflow at the registry versions load from
    ) -> MaterializeResult:
        """Realized metrics need labels; the estimate (classifiers) needs none: each version
        named in the day's prediction log is loaded from the registry, calibrated on the
        holdout of `<ds>.features` and its logged probabilities give the expected confusion
        matrix (see `defs.monitoring.estimates` and `lib.estimated`)."""
        day = context.partition_key
        champion, holdout = champion_holdout(spec, model_store)
        with warehouse.get_connection() as con:
            frame = labelled_on(con, spec, day)
            results = {
                (model, version): live.performance(spec, group)
                for (model, version), group in frame.groupby(["model", "version"])
            }
            day_served = estimates.served_on(con, spec, day)
            served = len(day_served)
            guesses = estimates.by_version(spec, day_served, estimates.holdout_features(con, spec))
            record_history(con, spec, day, results, guesses, served, frame)
            history = estimates.recent_history(con, spec, day)
            current = next((r for (_, v), r in results.items() if v == champion), None)
            passed, why = live.verdict(spec, current, holdout)
            retraining = (
                "live performance within the holdout interval: nothing landed"
                if passed
                else land_labelled(con, spec, day, champion, Path(source_files.landing_dir))
            )
        served_count = served_by_version(day_served)
        champion_served = sum(n for (_, v), n in served_count.items() if v == champion)
        if current is not None or champion_served:  # for the servers, as drift.json is
            guess = next((g for (_, v), g in guesses.items() if v == champion), {})
            document = live_document(
                ds,
                champion,
                day,
                (champion_served, current["labelled"] if current else 0),
                {k: v for k, v in (current or {}).items() if k != "labelled"},
                passed,
                {m: guess[m] for m in ESTIMATED_METRICS if m in guess},
            )
            publish_document(model_store.location(), LIVE_FILE, document)
        return MaterializeResult(
            metadata={
                "served": served,
                "labelled": len(frame),
                "label_coverage": len(frame) / served if served else None,
                "median_label_delay_s": float(frame["delay_s"].median()) if len(frame) else None,
                "champion_version": champion or "(none)",
                "verdict": why,
                "training_rows": retraining,
                "by_version": MetadataValue.md(
                    versions_markdown(spec, results, guesses, served_count)
                ),
                **version_values(spec, results, guesses),
                f"history_{metric}": MetadataValue.md(estimates.history_markdown(spec, history)),
            },
            check_results=[
                AssetCheckResult(
                    check_name=LIVE_CHECK,
                    passed=passed,
                    severity=AssetCheckSeverity.ERROR,
                    metadata={"verdict": why, "holdout_interval": holdout or {}},
                )
            ],
        )

    return live_performance


def land_labelled(con, spec: DatasetSpec, day: str, version: str, landing_dir: Path) -> str:
    """After a live drop, the champion's labelled requests of the day that are not training rows
    yet become a landed file (`labelled-<day>-v<version>.csv`, once): the landing sensor
    ingests it and the eager assets retrain on it. Says what happened."""
    missing = labelled_rows.missing_columns(spec)
    if missing:
        return f"labelled requests cannot be training rows: no request carries {missing}"
    rows = con.execute(labelled_rows.new_rows_sql(spec), {"v": version, "d": day}).df()
    if rows.empty:
        return f"the labelled requests of version {version} are training rows already"
    name = f"labelled-{day}-v{version}.csv"
    text = labelled_rows.source_text(spec, labelled_rows.source_rows(spec, rows))
    path = labelled_rows.land(landing_dir / spec.name, name, text)
    if path is None:
        return f"{name} was landed before: the same requests are not landed twice"
    return f"{len(rows)} new labelled rows of version {version} landed as {path}: a retrain follows"


def labelled_on(con, spec: DatasetSpec, day: str) -> pd.DataFrame:
    """The day's served predictions that have a current label."""
    if not (
        table_exists(con, spec.name, "labels") and table_exists(con, spec.name, "prediction_log")
    ):
        return pd.DataFrame(columns=["model", "version", "actual", "prediction"])
    return con.execute(
        "SELECT model, version, actual, prediction, probabilities, "
        f"epoch(received_at) - epoch(timestamp) AS delay_s FROM ({labels_lib.matched_sql(spec)}) "
        "WHERE CAST(timezone('UTC', timestamp) AS DATE) = CAST($d AS DATE)",
        {"d": day},
    ).df()


def record_history(
    con, spec: DatasetSpec, day: str, results: dict, guesses: dict, served: int, frame
) -> None:
    """Replace the day's rows of `<ds>.live_performance`: one per version and metric, realized
    (`estimate`, empty without labels) beside `estimated` (empty when not estimated)."""
    rows = []
    for model, version in sorted(set(results) | set(guesses)):
        realized, guess = results.get((model, version), {}), guesses.get((model, version), {})
        delays = frame.loc[frame["version"] == version, "delay_s"]
        for name in (m for m in METRICS[spec.task] if m in realized or m in guess):
            rows.append({"day": day, "model": model, "version": version, "metric": name,
                         "estimate": realized.get(name), "low": realized.get(f"{name}_low"),
                         "high": realized.get(f"{name}_high"),
                         "labelled": realized.get("labelled", 0), "served": served,
                         "median_delay_s": float(delays.median()) if len(delays) else None,
                         "estimated": guess.get(name),
                         "estimated_rows": guess.get("estimated_rows")})  # fmt: skip
    history = pd.DataFrame(rows, columns=[c.split()[0] for c in HISTORY_DDL.split(", ")])
    with transaction(con):
        if table_exists(con, spec.name, "live_performance"):
            target = table(spec.name, "live_performance")
            for column in ADDED_COLUMNS:  # a history written before the estimates existed
                con.execute(f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {column}")
            con.execute(f"DELETE FROM {target} WHERE day = CAST($d AS DATE)", {"d": day})
        history = history.astype({"day": "datetime64[ns]"})
        append_rows(con, spec.name, "live_performance", history, ddl=HISTORY_DDL)


def champion_holdout(spec: DatasetSpec, model_store: ModelStore) -> tuple[str | None, dict | None]:
    """The served champion's version and its holdout interval of the selection metric."""
    try:
        manifest, card = read_current_file(model_store.dataset_dir(spec.name), CARD_JSON_FILE)
    except BundleError:
        return None, None
    intervals = json.loads(card)["evaluation"]["intervals"]
    return str(manifest["version"]), intervals.get(f"test_{spec.selection_metric}")


def served_by_version(day_served: pd.DataFrame) -> dict:
    return day_served.groupby(["model", "version"]).size().to_dict()


def versions_markdown(spec: DatasetSpec, results: dict, guesses: dict, served: dict) -> str:
    """One line per version served or labelled that day: counts, label coverage, the realized
    metric with its interval and the estimated one."""
    metric = spec.selection_metric
    lines = [
        f"| model | version | served | labelled | coverage | {metric} | interval | "
        f"estimated {metric} | estimated rows |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(set(results) | set(guesses) | set(served)):
        result, guess = results.get(key), guesses.get(key, {})
        labelled, count = result["labelled"] if result else 0, served.get(key, 0)
        realized, interval = "", ""
        if result is not None:
            realized = f"{result[metric]:.4f}"
            interval = f"[{result[f'{metric}_low']:.4f}, {result[f'{metric}_high']:.4f}]"
        coverage = f"{labelled / count:.1%}" if count else ""
        shown = f"{guess[metric]:.4f}" if metric in guess else _not_estimated(spec, guess)
        lines.append(
            f"| {key[0]} | {key[1]} | {count} | {labelled} | {coverage} | {realized} | "
            f"{interval} | {shown} | {guess.get('estimated_rows', '')} |"
        )
    return "\n".join(lines)


def _not_estimated(spec: DatasetSpec, guess: dict) -> str:
    if spec.task != "classification":
        return estimates.REGRESSION_NOTE
    if "not_estimated" in guess:
        return guess["not_estimated"]
    if not guess:
        return "not estimated: the version served nothing in the day's prediction log"
    return f"not estimated: {spec.selection_metric} (estimated are {', '.join(ESTIMATED_METRICS)})"


def version_values(spec: DatasetSpec, results: dict, guesses: dict) -> dict:
    """Per version, the realized and the estimated selection metric as numbers (plottable in
    the UI across materializations); the regression note once."""
    metric = spec.selection_metric
    values: dict = {} if spec.task == "classification" else {"estimated": estimates.REGRESSION_NOTE}
    for (_, version), result in results.items():
        values[f"{metric}/v{version}"] = result[metric]
    for (_, version), guess in guesses.items():
        if metric in guess:
            values[f"estimated_{metric}/v{version}"] = guess[metric]
            values[f"estimated_rows/v{version}"] = guess["estimated_rows"]
            values[f"calibration_rows/v{version}"] = guess["calibration_rows"]
        else:
            values[f"estimated_{metric}/v{version}"] = _not_estimated(spec, guess)
    return values
