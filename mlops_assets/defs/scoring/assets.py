"""`<ds>/batch_predictions`: the champion scores a batch input, row by row accounted for."""

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from dagster import (
    AssetExecutionContext,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from mlops_assets.defs import keys
from mlops_assets.defs.keys import POOL, asset_key, group_name
from mlops_assets.defs.resources import ModelStore, SourceFiles, Warehouse
from mlops_assets.lib import batch
from mlops_assets.lib.features import query_features
from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.warehouse import replace_table, table
from mlops_contract.bundle import BundleError, load_bundle
from serving.model import from_bundle


def score_inputs(spec: DatasetSpec, score_dir: Path, con) -> list[tuple[str, pd.DataFrame]]:
    """Files in `score/<ds>/`, or else the most recently loaded validated partition."""
    folder = score_dir / spec.name
    files = sorted(p for p in folder.glob("*.csv")) if folder.is_dir() else []
    if files:
        return [(path.name, pd.read_csv(path)) for path in files]
    latest = con.execute(
        f"SELECT _partition FROM {table(spec.name, 'raw_files')} ORDER BY loaded_at DESC LIMIT 1"
    ).fetchall()
    if not latest:
        return []
    return [(latest[0][0], query_features(con, spec, latest[0][0]))]


def scoring_assets(spec: DatasetSpec) -> list:
    ds = spec.name

    @asset(
        key=asset_key(ds, keys.BATCH_PREDICTIONS),
        deps=[asset_key(ds, keys.CHAMPION), asset_key(ds, keys.VALIDATED)],
        group_name=group_name(ds),
        pool=POOL,
        kinds={"duckdb", "scikit-learn"},
        description=f"The champion's predictions for the CSV files in score/{ds}/ (or the latest "
        f"validated partition) in `{ds}.batch_predictions`; rows failing the API's input "
        f"validation in `{ds}.batch_rejections` with the reasons.",
    )
    def batch_predictions(
        context: AssetExecutionContext,
        warehouse: Warehouse,
        model_store: ModelStore,
        source_files: SourceFiles,
    ) -> MaterializeResult:
        try:
            model = from_bundle(ds, load_bundle(model_store.dataset_dir(ds)))
        except BundleError as exc:
            raise Failure(description=f"{ds}: no servable champion: {exc}") from None
        stamp = {"model_version": model.version, "dagster_run_id": context.run_id,
                 "scored_at": datetime.now(UTC)}  # fmt: skip
        with warehouse.get_connection() as con:
            inputs = score_inputs(spec, Path(source_files.score_dir), con)
            if not inputs:
                raise Failure(description=f"{ds}: nothing to score: no files, no validated data")
            scored = [(source, batch.score(frame, model)) for source, frame in inputs]
            predictions = pd.concat(
                [s.predictions.assign(source=source, **stamp) for source, s in scored]
            )
            rejected = pd.concat([s.rejected.assign(source=source) for source, s in scored])
            replace_table(con, ds, "batch_predictions", predictions)
            replace_table(con, ds, "batch_rejections", rejected)
        return MaterializeResult(
            metadata={
                "sources": [source for source, _ in inputs],
                "scored_rows": len(predictions),
                "rejected_rows": len(rejected),
                "model_version": model.version,
                "rejections": MetadataValue.md(
                    rejected.head(10).to_markdown(index=False) if len(rejected) else "(none)"
                ),
                "dagster/table_name": f"{ds}.batch_predictions",
                "dagster/row_count": len(predictions),
            }
        )

    return [batch_predictions]
