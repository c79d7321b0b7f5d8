"""The Dagster code location: one asset group per data set spec."""

from __future__ import annotations

from dagster import Definitions

from mlops_assets.defs.automation.sensors import automation_sensor
from mlops_assets.defs.ingestion.assets import ingestion_assets
from mlops_assets.defs.resources import resources_for
from mlops_assets.defs.training.assets import training_assets
from mlops_assets.lib.spec import DatasetSpec, load_specs
from mlops_assets.settings import Settings, load_settings


def dataset_assets(spec: DatasetSpec) -> list:
    return ingestion_assets(spec) + training_assets(spec)


def build_definitions(settings: Settings) -> Definitions:
    specs = load_specs(settings.spec_dirs)
    return Definitions(
        assets=[a for spec in specs.values() for a in dataset_assets(spec)],
        sensors=[automation_sensor(spec) for spec in specs.values()],
        resources=resources_for(settings),
    )


defs = build_definitions(load_settings())
