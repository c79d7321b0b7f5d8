"""The Dagster code location: one asset group per data set spec."""

from __future__ import annotations

from dagster import Definitions

from mlops_assets.defs.automation.sensors import (
    automation_sensor,
    monitoring_job,
    monitoring_schedule,
    retrain_job,
    retrain_on_drift_sensor,
    weekly_retrain_schedule,
)
from mlops_assets.defs.ingestion.assets import ingestion_assets
from mlops_assets.defs.ingestion.sensors import landing_sensor
from mlops_assets.defs.monitoring.assets import monitoring_assets
from mlops_assets.defs.resources import resources_for
from mlops_assets.defs.scoring.assets import scoring_assets
from mlops_assets.defs.training.assets import training_assets
from mlops_assets.lib.spec import DatasetSpec, load_specs
from mlops_assets.settings import Settings, load_settings


def dataset_assets(spec: DatasetSpec) -> list:
    """The assets `mlops build` materializes: from the source file to the champion."""
    return ingestion_assets(spec) + training_assets(spec)


def dataset_definitions(spec: DatasetSpec) -> Definitions:
    job, monitoring = retrain_job(spec), monitoring_job(spec)
    return Definitions(
        assets=dataset_assets(spec) + monitoring_assets(spec) + scoring_assets(spec),
        jobs=[job, monitoring],
        sensors=[
            automation_sensor(spec),
            landing_sensor(spec),
            retrain_on_drift_sensor(spec, job),
        ],
        schedules=[weekly_retrain_schedule(spec, job), monitoring_schedule(spec, monitoring)],
    )


def build_definitions(settings: Settings) -> Definitions:
    specs = load_specs(settings.spec_dirs)
    return Definitions.merge(
        *(dataset_definitions(spec) for spec in specs.values()),
        Definitions(resources=resources_for(settings)),
    )


defs = build_definitions(load_settings())
