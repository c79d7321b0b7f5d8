"""The champion and its challenger on the same live requests: how often they agree, and, on
the requests that have a label, which is better, with a paired bootstrap interval of the
difference (both scored on the same rows and resamples, `evaluation.paired_intervals`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from mlops_assets.lib import live
from mlops_assets.lib.evaluation import paired_intervals
from mlops_assets.lib.prediction_table import PREDICTION_LOG, SHADOW_LOG
from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.warehouse import table, table_exists

LIVE_EVIDENCE = "live evidence"  # the champion history's reason for a promotion on live traffic
PAIRED_COLUMNS = (
    "champion", "challenger", "champion_prediction", "challenger_prediction",
    "champion_probabilities", "challenger_probabilities", "actual",
)  # fmt: skip


@dataclass(frozen=True)
class Comparison:
    """One champion version against one challenger version on one day's requests."""

    champion: str
    challenger: str
    metric: str
    paired: int  # request rows both versions scored
    agreement: float | None  # classifiers: share of rows given the same label
    mean_abs_difference: float | None  # regressors: mean |champion - challenger| prediction
    labelled: int = 0  # paired rows with a current label
    champion_value: float | None = None  # the metric on the labelled rows
    challenger_value: float | None = None
    improvement: float | None = None  # challenger over champion, positive = better
    improvement_low: float | None = None
    improvement_high: float | None = None

    def summary(self) -> str:
        if self.improvement is None:
            return f"no labelled request both scored ({self.paired} paired)"
        return (
            f"live {self.metric} v{self.challenger} {self.challenger_value:.4f} vs "
            f"v{self.champion} {self.champion_value:.4f} on {self.labelled} labelled requests, "
            f"improvement {self.improvement:+.4f} [{self.improvement_low:+.4f}, "
            f"{self.improvement_high:+.4f}]"
        )

    def history_metrics(self) -> tuple[dict, dict]:
        """(the challenger's numbers, the champion's) as `<ds>.champion_history` keeps them."""
        key = f"live_{self.metric}"
        numbers = {
            key: self.challenger_value,
            "labelled": self.labelled,
            "improvement": self.improvement,
            "improvement_low": self.improvement_low,
            "improvement_high": self.improvement_high,
        }
        return numbers, {key: self.champion_value, "labelled": self.labelled}

    def row(self) -> dict:
        return asdict(self)


def _rows_of(spec: DatasetSpec, name: str) -> str:
    """A log table's rows of day $d, each with its position in its request (as labels name
    rows: `lib.labels.matched_sql`)."""
    return (
        "SELECT request_id, version, prediction, CAST(probabilities AS VARCHAR) AS "
        "probabilities, row_number() OVER (PARTITION BY request_id ORDER BY rowid) - 1 AS row "
        f"FROM {table(spec.name, name)} WHERE _day = CAST($d AS DATE)"
    )


def paired_on(con, spec: DatasetSpec, day: str) -> pd.DataFrame:
    """PAIRED_COLUMNS of the request rows of `day` both the champion (the prediction log) and
    the challenger (the shadow log) scored, with the current label where there is one."""
    if not all(table_exists(con, spec.name, name) for name in (PREDICTION_LOG, SHADOW_LOG)):
        return pd.DataFrame(columns=list(PAIRED_COLUMNS))
    labels = (
        f"(SELECT request_id, row, actual FROM {table(spec.name, 'labels')} WHERE current)"
        if table_exists(con, spec.name, "labels")
        else "(SELECT NULL::VARCHAR AS request_id, NULL::BIGINT AS row, NULL AS actual WHERE false)"
    )
    return con.execute(
        f"WITH c AS ({_rows_of(spec, PREDICTION_LOG)}), s AS ({_rows_of(spec, SHADOW_LOG)}) "
        "SELECT c.version AS champion, s.version AS challenger, "
        "c.prediction AS champion_prediction, s.prediction AS challenger_prediction, "
        "c.probabilities AS champion_probabilities, "
        "s.probabilities AS challenger_probabilities, l.actual "
        f"FROM c JOIN s USING (request_id, row) LEFT JOIN {labels} l USING (request_id, row) "
        "ORDER BY request_id, row",
        {"d": day},
    ).df()


def compare(spec: DatasetSpec, paired: pd.DataFrame) -> list[Comparison]:
    """One comparison per (champion, challenger) pair in `paired` (PAIRED_COLUMNS: one row
    per request row both scored, `actual` empty without a label)."""
    return [
        compare_pair(spec, str(champion), str(challenger), group)
        for (champion, challenger), group in paired.groupby(["champion", "challenger"])
    ]


def compare_pair(spec: DatasetSpec, champion: str, challenger: str, rows) -> Comparison:
    scored = rows.dropna(subset=["champion_prediction", "challenger_prediction"])
    first, second = scored["champion_prediction"], scored["challenger_prediction"]
    classifier = spec.task == "classification"
    same = (first.astype(str) == second.astype(str)).mean() if classifier and len(scored) else None
    gap = None if classifier or not len(scored) else float(np.abs(first - second).mean())
    comparison = Comparison(
        champion, challenger, spec.selection_metric, len(scored),
        None if same is None else float(same), gap,
    )  # fmt: skip
    labelled = scored.dropna(subset=["actual"])
    if labelled.empty:
        return comparison
    new, old, improvement = paired_intervals(
        spec, _as_scored(spec, labelled, "challenger"), _as_scored(spec, labelled, "champion")
    )
    return Comparison(
        **{
            **comparison.row(),
            "labelled": len(labelled),
            "champion_value": old["estimate"],
            "challenger_value": new["estimate"],
            "improvement": improvement["estimate"],
            "improvement_low": improvement["low"],
            "improvement_high": improvement["high"],
        }
    )


def _as_scored(spec: DatasetSpec, labelled: pd.DataFrame, version: str):
    frame = pd.DataFrame(
        {
            "actual": labelled["actual"].to_numpy(),
            "prediction": labelled[f"{version}_prediction"].to_numpy(),
            "probabilities": labelled[f"{version}_probabilities"].to_numpy(),
        }
    )
    return live.scored(spec.task, frame)


def live_evidence(spec: DatasetSpec, comparison: Comparison, current: tuple) -> tuple[bool, str]:
    """(promote, why) under `gates.promote_on_live_evidence`: the challenger is better on at
    least `min_labelled` labelled requests and the paired interval of the improvement lies
    above zero. `current` is the (champion, challenger) pair published now."""
    option = spec.gates.promote_on_live_evidence
    if option is None:
        return False, "gates.promote_on_live_evidence is not set: live evidence promotes nothing"
    if (comparison.champion, comparison.challenger) != tuple(current):
        return False, (
            f"v{comparison.champion} vs v{comparison.challenger} is not the published pair "
            f"(champion v{current[0]}, challenger v{current[1]})"
        )
    if comparison.labelled < option.min_labelled:
        return False, (
            f"too few labelled requests to judge ({comparison.labelled} < "
            f"{option.min_labelled}, gates.promote_on_live_evidence.min_labelled)"
        )
    if comparison.improvement_low <= 0:
        return False, f"not better beyond chance: {comparison.summary()}"
    return True, comparison.summary()
