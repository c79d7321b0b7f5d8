"""What moves a data set forward without clicks."""

from dagster import AssetSelection, AutomationConditionSensorDefinition, DefaultSensorStatus

from mlops_assets.lib.spec import DatasetSpec


def automation_sensor(spec: DatasetSpec) -> AutomationConditionSensorDefinition:
    """Evaluates the eager conditions of one data set's group: a newly materialized raw partition
    is validated, and a changed validated table flows on to features, candidates and champion."""
    return AutomationConditionSensorDefinition(
        f"{spec.name}_automation",
        target=AssetSelection.groups(spec.name),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description=f"Declarative automation for the {spec.name} assets (toggle it in the UI).",
    )
