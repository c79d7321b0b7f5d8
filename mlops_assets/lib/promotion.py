"""The champion gate and the promotion: a challenger replaces the champion only when it is at
least as good, and a promotion moves the registry alias, publishes the bundle and records why."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from mlops_assets.lib import model_card, registry, training
from mlops_assets.lib.evaluation import Evaluation, evaluate
from mlops_assets.lib.features import data_version, model_inputs
from mlops_assets.lib.fingerprint import FINGERPRINT_TAG, training_fingerprint
from mlops_assets.lib.locks import exclusive_lock
from mlops_assets.lib.publishing import (
    copy_to_location,
    manifest_for,
    publish_bundle,
    reference_profile,
    republish_as_champion,
    withdraw_challenger,
)
from mlops_assets.lib.reconcile import (
    HISTORY,
    HISTORY_COLUMNS,
    reconcile_champion,
    served_manifest,
)
from mlops_assets.lib.series import history_window
from mlops_assets.lib.shadow import LIVE_EVIDENCE, Comparison
from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.training import improvement
from mlops_assets.lib.warehouse import append_rows
from mlops_contract import bundle
from mlops_contract.bundle import (
    CHALLENGER_FILE,
    HISTORY_FILE,
    POINTER_FILE,
    PUBLISHED_AS_CHALLENGER,
    REFERENCE_FILE,
)


class PromotionError(Exception):
    """Nothing can be promoted: e.g. no candidates to choose from."""


@dataclass(frozen=True)
class Decision:
    promote: bool
    beats_baseline: bool
    reason: str

    @property
    def kind(self) -> str:
        """initial | better | tie | within margin | kept champion | below baseline"""
        return self.reason.split(":", 1)[0] if self.beats_baseline else "below baseline"


def decide(
    spec: DatasetSpec,
    challenger: dict[str, float],
    baseline: dict[str, float],
    champion: dict[str, float] | None,
    baseline_name: str = "baseline",
) -> Decision:
    """Compare on the same holdout: first against the baseline (`training.baseline`, named in
    the reason), then against the champion."""
    metric = f"test_{spec.selection_metric}"
    new, margin = challenger[metric], spec.gates.promotion_margin
    over_baseline = improvement(spec, challenger, baseline)
    if over_baseline <= spec.gates.baseline_margin:
        return Decision(
            False,
            False,
            f"{metric} {new:.4f} does not beat the {baseline_name} baseline's "
            f"{baseline[metric]:.4f} by more than {spec.gates.baseline_margin}",
        )
    if champion is None:
        return Decision(True, True, "initial: no champion yet")
    old = champion[metric]
    over_champion = improvement(spec, challenger, champion)
    if over_champion > 0:
        return Decision(True, True, f"better: {metric} {new:.4f} beats the champion's {old:.4f}")
    if over_champion == 0:
        return Decision(
            True,
            True,
            f"tie: promoted because {metric} {new:.4f} equals the champion's and the "
            "challenger is trained on the newest data",
        )
    if over_champion >= -margin:
        return Decision(
            True,
            True,
            f"within margin: promoted because {metric} {new:.4f} trails the champion's "
            f"{old:.4f} by no more than the margin {margin}",
        )
    return Decision(
        False,
        True,
        f"kept champion: {metric} {new:.4f} trails the champion's "
        f"{old:.4f} by more than the margin {margin}",
    )


@dataclass(frozen=True)
class PromotionOutcome:
    decision: Decision
    family: str
    mlflow_run_id: str
    metrics: dict[str, float]  # the challenger's, on the holdout
    baseline_metrics: dict[str, float]
    previous_version: str | None
    previous_metrics: dict[str, float] | None  # None: no champion, or it cannot be scored
    version: str | None = None  # the registry version, None when below the baseline
    bundle_path: Path | None = None  # the new bundle, None when not promoted
    notes: tuple[str, ...] = ()  # warnings worth a log line
    evaluation: Evaluation | None = None  # intervals, importance, slices, slice gate
    card: dict[str, bytes] = field(default_factory=dict)  # the model card files
    baseline_name: str = "mean"  # which baseline the gate held it to (training.baseline)

    @property
    def promoted(self) -> bool:
        return self.decision.promote

    @property
    def reason(self) -> str:
        return self.decision.reason


def best_candidate(candidates: pd.DataFrame, spec: DatasetSpec) -> pd.Series:
    if candidates.empty:
        raise PromotionError(f"{spec.name}: no candidates to promote; materialize candidates")
    metric = f"test_{spec.selection_metric}"
    ordered = candidates.sort_values(metric, ascending=not spec.higher_is_better, kind="stable")
    return ordered.iloc[0]


def champion_on_holdout(spec: DatasetSpec, x_test, y_test):
    """(version, metrics on today's holdout, notes) of the current champion; metrics None when
    there is none or it cannot be scored."""
    found = registry.champion_version(MlflowClient(), spec.name)
    if found is None:
        return None, None, ()
    current = str(found.version)
    try:
        model = registry.load_model(f"models:/{spec.name}@{registry.CHAMPION}")
        return current, training.holdout_metrics(spec.task, model, x_test, y_test), ()
    except Exception as exc:  # an unloadable or incompatible champion cannot defend its title
        return current, None, (f"{spec.name}: champion v{current} cannot be scored: {exc}",)


def promote(
    spec: DatasetSpec,
    candidates: pd.DataFrame,
    features: pd.DataFrame,
    *,
    dataset_dir: Path,
    connect: Callable[[], AbstractContextManager],
    run_id: str,
    trigger: str,
    publish_to: str | None = None,
) -> PromotionOutcome:
    """Gate the best candidate and, when it wins, register it as `champion`, publish its bundle
    (in `dataset_dir`, and at `publish_to` when servers follow another location) and append a
    row to `<ds>.champion_history`; a loser above the baseline becomes `challenger`, its bundle
    published beside the champion's (challenger.json) for the servers to score in the shadow.
    `connect()` opens the warehouse. Raises PromotionError or BundleError."""
    best = best_candidate(candidates, spec)
    model = registry.load_model(best["model_uri"])
    # read champion -> decide -> publish -> alias is one step per data set across processes,
    # whatever the Dagster instance's pools say (a DAGSTER_HOME without the project's config)
    with exclusive_lock(dataset_dir.parent / f".{spec.name}.champion.lock"):
        return _decide_and_publish(
            spec,
            best,
            model,
            candidates,
            features,
            dataset_dir,
            connect,
            run_id,
            trigger,
            publish_to,
        )


def _decide_and_publish(
    spec, best, model, candidates, features, dataset_dir, connect, run_id, trigger, publish_to
) -> PromotionOutcome:
    reconciled = reconcile_champion(spec.name, dataset_dir, connect)
    x_train, y_train = model_inputs(features, spec, "train")
    x_test, y_test = model_inputs(features, spec, "test")
    challenger = training.holdout_metrics(spec.task, model, x_test, y_test)
    reference = training.baseline(spec, x_train, y_train, x_test, y_test)
    baseline = training.holdout_metrics(spec.task, reference.model, x_test, y_test)
    previous_version, previous, notes = champion_on_holdout(spec, x_test, y_test)
    evaluation = evaluate(spec, model, reference.model, x_train, y_train, x_test, y_test)
    # the slice gate, like the baseline, is decided before any alias moves
    decision = evaluation.gated(decide(spec, challenger, baseline, previous, reference.name))
    outcome = PromotionOutcome(
        decision, best["family"], best["run_id"], challenger, baseline, previous_version,
        previous, notes=reconciled + tuple(notes), evaluation=evaluation,
        baseline_name=reference.name,
    )  # fmt: skip
    version = None
    if decision.beats_baseline:
        fingerprint = training_fingerprint(spec, data_version(features))
        tags = {"dagster_run_id": run_id, "family": best["family"], FINGERPRINT_TAG: fingerprint}
        version = registry.register(spec.name, best["model_uri"], tags)
    with connect() as con:
        card = model_card.card_files(
            con, spec, best, candidates, evaluation, decision, version, run_id
        )
    model_card.log_to_mlflow(best["run_id"], card)
    outcome = replace(outcome, version=version, card=card)
    if not decision.beats_baseline:
        return outcome
    pointer = POINTER_FILE if decision.promote else CHALLENGER_FILE
    manifest = manifest_for(spec, best, version, challenger, run_id, x_train)
    manifest["metric_intervals"] = evaluation.intervals
    if not decision.promote:
        manifest.update(PUBLISHED_AS_CHALLENGER)
    extra = {REFERENCE_FILE: reference_profile(spec, model, x_train), **card}
    if spec.series is not None:
        with connect() as con:
            extra[HISTORY_FILE] = history_window(con, spec)
    path = publish_bundle(dataset_dir, model, manifest, x_test, extra, publish_to, pointer)
    if not decision.promote:  # the servers score it in the shadow of the champion
        registry.set_alias(spec.name, registry.CHALLENGER, version)
        return outcome
    registry.set_alias(spec.name, registry.CHAMPION, version)
    retire_challenger(spec.name, dataset_dir, publish_to)
    outcome = replace(outcome, version=version, bundle_path=path)
    with connect() as con:
        record_promotion(
            con, spec, version, previous_version, decision.kind, trigger, run_id,
            (challenger, previous),
        )  # fmt: skip
    return outcome


def retire_challenger(name: str, dataset_dir: Path, publish_to: str | None) -> None:
    """A new champion ends the shadow: the challenger lost to the champion it replaced."""
    withdraw_challenger(dataset_dir, publish_to)
    registry.delete_alias(name, registry.CHALLENGER)


def record_promotion(
    con, spec: DatasetSpec, version, previous_version, reason: str, trigger, run_id, metrics
) -> None:
    """One row of `<ds>.champion_history`; `metrics` are (the new champion's, the previous
    one's): on the holdout, or on live traffic for `live evidence`."""
    row = {
        "version": version,
        "promoted_at": datetime.now(UTC),
        "previous_version": previous_version,
        "reason": reason,
        "trigger": trigger,
        "dagster_run_id": run_id,
        "metrics": json.dumps(metrics[0]),
        "previous_metrics": json.dumps(metrics[1]),
    }
    append_rows(con, spec.name, HISTORY, pd.DataFrame([row]), HISTORY_COLUMNS)


def promote_on_live_evidence(
    spec: DatasetSpec,
    evidence: Comparison,
    *,
    dataset_dir: Path,
    connect: Callable[[], AbstractContextManager],
    run_id: str,
    trigger: str,
    publish_to: str | None = None,
) -> str:
    """The published challenger becomes champion: its bundle, verified again, is published anew
    as a champion's (without the challenger mark) and pointed at (here and at `publish_to`),
    alias `champion` moves to it and `<ds>.champion_history` records `live evidence` with the
    live numbers. Only when `evidence` is about the champion and the
    challenger published now. Says what happened; raises BundleError for a challenger bundle
    that does not verify (the champion stays)."""
    with exclusive_lock(dataset_dir.parent / f".{spec.name}.champion.lock"):
        pointer = bundle.read_pointer(dataset_dir, CHALLENGER_FILE)
        served = served_manifest(dataset_dir)
        if pointer is None or served is None:
            return "nothing promoted: no champion and challenger are published"
        challenger = bundle.load_bundle(dataset_dir, pointer)
        pair = (str(served["version"]), challenger.version)
        if pair != (evidence.champion, evidence.challenger):
            return (
                f"nothing promoted: the evidence compares v{evidence.champion} with "
                f"v{evidence.challenger}, the published pair is v{pair[0]} and v{pair[1]}"
            )
        promoted = republish_as_champion(dataset_dir, challenger, run_id)
        bundle.point_to(dataset_dir, promoted)
        copy_to_location(publish_to, dataset_dir, promoted)
        registry.set_alias(spec.name, registry.CHAMPION, challenger.version)
        retire_challenger(spec.name, dataset_dir, publish_to)
        with connect() as con:
            record_promotion(
                con, spec, challenger.version, pair[0], LIVE_EVIDENCE, trigger, run_id,
                evidence.history_metrics(),
            )  # fmt: skip
    return f"promoted v{challenger.version} on live evidence: {evidence.summary()}"
