"""`<ds>/shadow_comparison`: the champion and the challenger the servers score in its shadow, on
the same requests of one day (lib.shadow); with `gates.promote_on_live_evidence`, the
challenger is promoted when live evidence says it is better (lib.promotion)."""

import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from mlops_assets.defs import keys
from mlops_assets.defs.keys import POOL, asset_key, group_name
from mlops_assets.defs.monitoring.assets import PREDICTION_DAYS
from mlops_assets.defs.resources import MlflowTracking, ModelStore, SourceFiles, Warehouse
from mlops_assets.lib import prediction_table
from mlops_assets.lib import shadow as shadow_lib
from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.warehouse import append_rows, table, table_exists, transaction
from mlops_contract.bundle import CHALLENGER_FILE, BundleError, read_manifest, read_pointer

HISTORY = "shadow_comparison"
HISTORY_DDL = (
    "day DATE, champion VARCHAR, challenger VARCHAR, metric VARCHAR, paired BIGINT, "
    "agreement DOUBLE, mean_abs_difference DOUBLE, labelled BIGINT, champion_value DOUBLE, "
    "challenger_value DOUBLE, improvement DOUBLE, improvement_low DOUBLE, "
    "improvement_high DOUBLE, verdict VARCHAR"
)


def shadow_comparison_asset(spec: DatasetSpec):
    ds = spec.name
    option = spec.gates.promote_on_live_evidence
    promotes = (
        f" With `gates.promote_on_live_evidence` (here min_labelled = {option.min_labelled}) the "
        "challenger becomes champion when it is better on that many labelled requests with the "
        "interval above zero (`live evidence` in the champion history)."
        if option
        else " Promotes nothing (`gates.promote_on_live_evidence` is not set)."
    )

    @asset(
        key=asset_key(ds, keys.SHADOW_COMPARISON),
        group_name=group_name(ds),
        partitions_def=PREDICTION_DAYS,
        deps=[AssetDep(asset_key(ds, keys.PREDICTION_LOG)), AssetDep(asset_key(ds, keys.LABELS))],
        pool=POOL,
        kinds={"duckdb"},
        description=f"The challenger's shadow predictions of one UTC day (`{ds}.shadow_log`) "
        "beside the champion's on the same requests: agreement, and on the labelled ones the "
        f"paired difference of {spec.selection_metric} with a bootstrap interval. History in "
        f"`{ds}.{HISTORY}`.{promotes}",
    )
    def shadow_comparison(
        context: AssetExecutionContext,
        warehouse: Warehouse,
        model_store: ModelStore,
        source_files: SourceFiles,
        mlflow: MlflowTracking,  # set up, it points MLflow at the registry the aliases live in
    ) -> MaterializeResult:
        day = context.partition_key
        path = source_files.shadow_log(ds, day)
        with warehouse.get_connection() as con:
            loaded = prediction_table.load_day(con, spec, path, day, prediction_table.SHADOW_LOG)
            comparisons = shadow_lib.compare(spec, shadow_lib.paired_on(con, spec, day))
        dataset_dir = model_store.dataset_dir(ds)
        pair = published_pair(dataset_dir)
        verdicts = [shadow_lib.live_evidence(spec, c, pair) for c in comparisons]
        with warehouse.get_connection() as con:
            record_history(con, spec, day, comparisons, [why for _, why in verdicts])
        outcome = "no comparison wins on live evidence"
        winner = next((c for c, (won, _) in zip(comparisons, verdicts, strict=True) if won), None)
        if winner is not None:
            outcome = promote(context, spec, winner, model_store, warehouse)
        context.log.info(f"{ds}: {outcome}")
        return MaterializeResult(
            metadata={
                "shadow_rows": loaded.rows,
                "torn_lines_skipped": loaded.torn_lines,
                "published_champion": pair[0] or "(none)",
                "published_challenger": pair[1] or "(none)",
                "comparisons": MetadataValue.md(comparisons_markdown(comparisons, verdicts)),
                "promotion": outcome,
                **comparison_values(comparisons),
                "dagster/table_name": f"{ds}.{HISTORY}",
            }
        )

    return shadow_comparison


def published_pair(dataset_dir) -> tuple[str | None, str | None]:
    """The versions current.json and challenger.json name now."""
    from mlops_assets.lib.reconcile import served_manifest  # imports MLflow: not at load

    champion = served_manifest(dataset_dir)
    try:
        pointer = read_pointer(dataset_dir, CHALLENGER_FILE)
        challenger = read_manifest(dataset_dir, pointer)[1] if pointer else None
    except (BundleError, OSError, ValueError):
        challenger = None
    return tuple(None if m is None else str(m["version"]) for m in (champion, challenger))


def promote(
    context, spec: DatasetSpec, winner, model_store: ModelStore, warehouse: Warehouse
) -> str:
    from mlops_assets.lib.promotion import promote_on_live_evidence

    try:
        return promote_on_live_evidence(
            spec,
            winner,
            dataset_dir=model_store.dataset_dir(spec.name),
            publish_to=model_store.url,
            connect=warehouse.get_connection,
            run_id=context.run_id,
            trigger=context.run.tags.get(keys.TRIGGER_TAG, "manual"),
        )
    except BundleError as exc:
        raise Failure(
            description=f"{spec.name}: the challenger stays a challenger: {exc}"
        ) from None


def record_history(con, spec: DatasetSpec, day: str, comparisons: list, verdicts: list) -> None:
    """Replace the day's rows of `<ds>.shadow_comparison`: one per (champion, challenger)."""
    pairs = zip(comparisons, verdicts, strict=True)
    rows = [{"day": day, **comparison.row(), "verdict": why} for comparison, why in pairs]
    frame = pd.DataFrame(rows, columns=[c.split()[0] for c in HISTORY_DDL.split(", ")])
    with transaction(con):
        if table_exists(con, spec.name, HISTORY):
            target = table(spec.name, HISTORY)
            con.execute(f"DELETE FROM {target} WHERE day = CAST($d AS DATE)", {"d": day})
        frame = frame.astype({"day": "datetime64[ns]"})
        append_rows(con, spec.name, HISTORY, frame, ddl=HISTORY_DDL)


def comparisons_markdown(comparisons: list, verdicts: list) -> str:
    if not comparisons:
        return "no request was scored by both a champion and a challenger on this day"
    lines = ["| champion | challenger | paired | agreement | labelled | comparison | verdict |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for comparison, (_, why) in zip(comparisons, verdicts, strict=True):
        agreement = comparison.agreement
        if agreement is None:
            agreement = f"mean abs difference {comparison.mean_abs_difference:.4g}"
        else:
            agreement = f"{agreement:.1%}"
        lines.append(
            f"| v{comparison.champion} | v{comparison.challenger} | {comparison.paired} | "
            f"{agreement} | {comparison.labelled} | {comparison.summary()} | {why} |"
        )
    return "\n".join(lines)


def comparison_values(comparisons: list) -> dict:
    """Per challenger, its agreement and improvement as numbers the UI plots over time."""
    values = {}
    for c in comparisons:
        name = f"v{c.challenger}_vs_v{c.champion}"
        for key in ("agreement", "mean_abs_difference", "improvement", "improvement_low"):
            if getattr(c, key) is not None:
                values[f"{key}/{name}"] = float(getattr(c, key))
        values[f"labelled/{name}"] = c.labelled
    return values
