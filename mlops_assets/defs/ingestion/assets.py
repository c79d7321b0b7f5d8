"""`<ds>/raw` and `<ds>/validated`: one partition per source file."""

from dagster import (
    AssetExecutionContext,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from mlops_assets.defs import keys
from mlops_assets.defs.ingestion.checks import evaluate_validated_checks, validated_check_specs
from mlops_assets.defs.ingestion.partitions import files_partitions
from mlops_assets.defs.keys import POOL, asset_key, group_name
from mlops_assets.defs.resources import SourceFiles, Warehouse
from mlops_assets.lib import quality
from mlops_assets.lib.ingest import FileRejected, load_raw
from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.lib.validation import MissingColumns, check_columns, validate_partition

__all__ = ["files_partitions", "ingestion_assets"]


def ingestion_assets(spec: DatasetSpec) -> list:
    ds = spec.name
    partitions = files_partitions(spec)

    @asset(
        key=asset_key(ds, keys.RAW),
        group_name=group_name(ds),
        partitions_def=partitions,
        pool=POOL,
        kinds={"duckdb"},
        description=(
            f"The source file landed unchanged (content-addressed, read-only) as the raw record; "
            f"`{ds}.raw` shows its lines as text with file and line number."
        ),
    )
    def raw(
        context: AssetExecutionContext, warehouse: Warehouse, source_files: SourceFiles
    ) -> MaterializeResult:
        path = source_files.path_for(spec, context.partition_key)
        context.log.info(f"landing {path} as the raw record of {ds}")
        try:
            with warehouse.get_connection() as con:
                loaded = load_raw(con, spec, path, context.partition_key)
        except FileRejected as exc:
            raise Failure(description=f"{ds}: {exc}") from None
        return MaterializeResult(
            metadata={
                "source_file": str(path),
                "rows": loaded.rows,
                "malformed_lines": loaded.malformed_lines,
                "has_header": loaded.has_header,
                "columns": loaded.columns,
                "sha256": loaded.sha256,
                "landed_file": str(loaded.landed_file),
                "dagster/table_name": f"{ds}.raw",
                "dagster/row_count": loaded.rows,
            },
            data_version=DataVersion(loaded.sha256),
        )

    @asset(
        key=asset_key(ds, keys.VALIDATED),
        deps=[raw.key],
        group_name=group_name(ds),
        partitions_def=partitions,
        pool=POOL,
        kinds={"duckdb", "pandera"},
        check_specs=validated_check_specs(asset_key(ds, keys.VALIDATED)),
        # no automation condition: each run that loads a raw partition (the landing sensor's,
        # the build job, `mlops build`) validates it too; a condition on this file-partitioned
        # asset made every automation tick list its partitions about 70 times per data set
        description=(
            f"Rows of `{ds}.raw` that meet the spec, typed, in `{ds}.validated`; every other row "
            f"in `{ds}.quarantine` with its reasons."
        ),
    )
    def validated(context: AssetExecutionContext, warehouse: Warehouse) -> MaterializeResult:
        partition = context.partition_key
        with warehouse.get_connection() as con:
            try:
                check_columns(quality.file_columns(con, ds, partition), spec, partition)
            except MissingColumns as exc:
                raise Failure(description=f"{ds}: {exc}") from None
            summary = validate_partition(con, spec, partition)
            checks = evaluate_validated_checks(con, spec, partition, summary)
        context.log.info(
            f"{ds}/{partition}: {summary.valid} valid, {summary.quarantined} quarantined"
        )
        return MaterializeResult(
            metadata={
                "rows": summary.rows,
                "valid_rows": summary.valid,
                "quarantined_rows": summary.quarantined,
                "quarantine_reasons": MetadataValue.json(dict(summary.reasons)),
                "dagster/table_name": f"{ds}.validated",
                "dagster/row_count": summary.valid,
            },
            check_results=checks,
        )

    return [raw, validated]
