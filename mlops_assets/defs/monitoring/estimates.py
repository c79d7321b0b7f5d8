"""Estimated performance of each served classifier version (`lib.estimated`) for
`<ds>/live_performance`, and the history of realized against estimated as metadata.

The calibration follows the prediction log's lineage: each logged prediction names the
registered version that made it, so that version is loaded from the MLflow registry
(`models:/<ds>/<version>`) and scored on the test side of `<ds>.features`, where the labels are
known. With a random split a row keeps its side as partitions arrive, so the test rows are
never ones the version was trained on; newer test rows only add calibration data. A time split
tests on the newest rows: only a backfill of rows older than the version's training data could
move some of its training rows into the test side.
"""

from __future__ import annotations

import pandas as pd

from mlops_assets.lib import charts, estimated
from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.warehouse import table, table_exists

HISTORY_DAYS = 14
REGRESSION_NOTE = (
    "not estimated: regression (confidence-based estimation needs class probabilities)"
)


def served_on(con, spec: DatasetSpec, day: str) -> pd.DataFrame:
    """Every prediction served on `day`, labelled or not."""
    if not table_exists(con, spec.name, "prediction_log"):
        return pd.DataFrame(columns=["model", "version", "prediction", "probabilities"])
    return con.execute(
        "SELECT model, version, prediction, CAST(probabilities AS VARCHAR) AS probabilities "
        f"FROM {table(spec.name, 'prediction_log')} WHERE _day = CAST($d AS DATE)",
        {"d": day},
    ).df()


def holdout_features(con, spec: DatasetSpec) -> pd.DataFrame | None:
    if not table_exists(con, spec.name, "features"):
        return None
    return con.execute(f"SELECT * FROM {table(spec.name, 'features')}").df()


def by_version(spec: DatasetSpec, served: pd.DataFrame, features) -> dict:
    """(model, version) -> the estimated metrics with `estimated_rows` and `calibration_rows`
    (the holdout's), or `not_estimated` with the reason; empty for regression."""
    if spec.task != "classification":
        return {}
    return {
        (model, version): estimate_version(spec, version, group, features)
        for (model, version), group in served.groupby(["model", "version"])
    }


def estimate_version(spec: DatasetSpec, version: str, served: pd.DataFrame, features) -> dict:
    from mlops_assets.lib import registry  # MLflow is imported by runs, not the code location

    if features is None or not (features["_split"] == "test").any():
        return {"not_estimated": f"no holdout rows in {spec.name}.features to calibrate on"}
    if estimated.with_probabilities(served).empty:
        return {"not_estimated": "the predictions were logged without probabilities"}
    try:
        model = registry.load_model(f"models:/{spec.name}/{version}")
        calibrator = estimated.holdout_calibrator(spec, model, features)
    except Exception as exc:  # a version that cannot be loaded or scored has no estimate
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {"not_estimated": f"version {version} cannot be calibrated: {reason}"}
    holdout_rows = int((features["_split"] == "test").sum())
    return {**estimated.estimate_logged(calibrator, served), "calibration_rows": holdout_rows}


def recent_history(con, spec: DatasetSpec, day: str) -> pd.DataFrame:
    """The selection metric's rows of `<ds>.live_performance` for the HISTORY_DAYS to `day`."""
    return con.execute(
        "SELECT CAST(day AS VARCHAR) AS day, version, labelled, estimate AS realized, "
        f"estimated_rows, estimated FROM {table(spec.name, 'live_performance')} "
        "WHERE metric = $m AND day BETWEEN CAST($d AS DATE) - $n AND CAST($d AS DATE) "
        "ORDER BY version, day",
        {"m": spec.selection_metric, "d": day, "n": HISTORY_DAYS - 1},
    ).df()


def history_markdown(spec: DatasetSpec, history: pd.DataFrame) -> str:
    """The recent history as a table, with a chart (realized solid, estimated dashed) when
    matplotlib is importable, inline as the drift asset's charts are."""
    metric = spec.selection_metric
    shown = history.rename(columns={"realized": metric, "estimated": f"estimated_{metric}"}).astype(
        object
    )
    table_md = shown.where(shown.notna(), "").to_markdown(index=False, floatfmt=".4f")
    return table_md + charts.markdown_image(
        history_chart_png(history, metric), "realized vs estimated"
    )


def history_chart_png(history: pd.DataFrame, metric: str) -> bytes | None:
    """One line per version and kind over the days; None without matplotlib or history."""
    figure = None if history.empty else charts.new_figure(6, 2.8)
    if figure is None:
        return None
    axes = figure.add_subplot()
    for index, (version, rows) in enumerate(history.groupby("version")):
        color = f"C{index % 10}"
        axes.plot(rows["day"], rows["realized"], "o-", color=color, label=f"v{version} realized")
        axes.plot(rows["day"], rows["estimated"], "s--", color=color, label=f"v{version} estimated")
    axes.set_ylabel(metric, fontsize=8)
    axes.tick_params(labelsize=7)
    axes.tick_params(axis="x", rotation=45)
    axes.legend(fontsize=7)
    return charts.png(figure)
