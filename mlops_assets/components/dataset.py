"""A data set as a Dagster component: a `defs.yaml` naming one spec file.

    type: mlops_assets.components.DatasetComponent
    attributes:
      spec: prices.yaml        # relative to this defs.yaml

The built-in data sets are such components (`mlops_assets/defs/datasets/<name>/`); a spec file
moves unchanged between a component and `MLOPS_DATASETS_DIR` (components/project.py).
`dg scaffold defs mlops_assets.components.DatasetComponent datasets/<name>` writes both files.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import dagster as dg

from mlops_assets.defs.automation.live_evaluation import live_evaluation_sensor
from mlops_assets.defs.automation.sensors import (
    automation_sensor,
    build_job,
    monitoring_schedule,
    retrain_on_drift_sensor,
    weekly_retrain_schedule,
)
from mlops_assets.defs.ingestion.assets import ingestion_assets
from mlops_assets.defs.ingestion.sensors import landing_sensor
from mlops_assets.defs.monitoring.assets import monitoring_assets
from mlops_assets.defs.monitoring.labels import (
    labels_asset,
    labels_sensor,
    live_performance_asset,
)
from mlops_assets.defs.monitoring.shadow import shadow_comparison_asset
from mlops_assets.defs.scoring.assets import scoring_assets
from mlops_assets.defs.training.assets import training_assets
from mlops_assets.lib.spec import DatasetSpec, load_spec, parse_spec, spec_files
from mlops_assets.settings import load_settings, source_override_var

TEMPLATE = Path(__file__).with_name("spec_template.yaml")


def dataset_assets(spec: DatasetSpec) -> list:
    """The assets `mlops build` materializes: from the source file to the champion."""
    return ingestion_assets(spec) + training_assets(spec)


def dataset_definitions(spec: DatasetSpec) -> dg.Definitions:
    """One data set's assets and its build job; its sensors and schedules are those of every
    data set (`automation_definitions`), so the daemon's idle cost hardly grows with the data
    sets. Retrain and monitoring runs select their assets: a job per data set for each would
    make every code server and daemon build and read 2 more job snapshots per data set."""
    return dg.Definitions(
        assets=[
            *dataset_assets(spec),
            *monitoring_assets(spec),
            labels_asset(spec),
            live_performance_asset(spec),
            shadow_comparison_asset(spec),
            *scoring_assets(spec),
        ],
        jobs=[build_job(spec)],
    )


def automation_definitions(specs: Iterable[DatasetSpec]) -> dg.Definitions:
    """One sensor or schedule of each kind, over the given data sets (every data set that is
    not paused): landing, labels, live_evaluation, retrain_on_drift, automation, monitoring,
    weekly_retrain."""
    specs = list(specs)
    if not specs:
        return dg.Definitions()
    return dg.Definitions(
        sensors=[
            automation_sensor(specs),
            landing_sensor(specs),
            labels_sensor(specs),
            retrain_on_drift_sensor(specs),
            live_evaluation_sensor(specs),
        ],
        schedules=[weekly_retrain_schedule(specs), monitoring_schedule(specs)],
    )


def datasets_definitions(specs: Iterable[DatasetSpec]) -> dg.Definitions:
    """The data sets' assets and jobs, with the sensors and schedules over all of them."""
    specs = list(specs)
    return dg.Definitions.merge(
        *(dataset_definitions(spec) for spec in specs), automation_definitions(specs)
    )


def _spec_path(context: dg.ResolutionContext, value: str) -> Path:
    return context.resolve_source_relative_path(value)


class DatasetScaffolder(dg.Scaffolder):
    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        name = request.target_path.name
        spec_text = (
            TEMPLATE.read_text(encoding="utf-8")
            .replace("__SOURCE_VAR__", source_override_var(name))
            .replace("__NAME__", name)
        )
        spec_file = request.target_path / f"{name}.yaml"
        parse_spec(spec_text, spec_file)  # a name the spec rules refuse fails before any file
        dg.scaffold_component(request, {"spec": spec_file.name})
        spec_file.write_text(spec_text, encoding="utf-8")


@dg.scaffold_with(DatasetScaffolder)
class DatasetComponent(dg.Component, dg.Model, dg.Resolvable):
    """One data set: every asset, check and job of the chain, from one spec; the code location
    adds it to the sensors and schedules that cover every data set."""

    spec: Annotated[
        Path,
        dg.Resolver(
            _spec_path,
            model_field_type=str,
            description="the data set's spec file, relative to this defs.yaml",
        ),
    ]

    @functools.cached_property
    def dataset_spec(self) -> DatasetSpec:
        """The parsed spec (parsed once: building the definitions and listing every data set
        both read it)."""
        return load_spec(self.spec)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        spec = self.dataset_spec
        if replaced_by_spec_folder(spec.name):
            return dg.Definitions()  # defs/spec_folder.py builds the replacement
        return dataset_definitions(spec)


def replaced_by_spec_folder(name: str) -> bool:
    """Whether `MLOPS_DATASETS_DIR` holds a spec of data set `name` (components/project.py)."""
    folder = load_settings().datasets_dir
    return folder is not None and name in {path.stem for path in spec_files(folder)}
