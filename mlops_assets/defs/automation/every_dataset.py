"""One sensor or schedule of each kind over every data set of the project (components and
`MLOPS_DATASETS_DIR`) that `MLOPS_PAUSED_DATASETS` does not name."""

import dagster as dg

from mlops_assets.components.dataset import automation_definitions
from mlops_assets.components.project import project_specs
from mlops_assets.settings import load_settings


# the context's annotation must be the class itself (no `from __future__ import annotations`):
# `@dg.definitions` tells a context-taking function by it
@dg.definitions
def every_dataset_automation(context: dg.ComponentLoadContext) -> dg.Definitions:
    settings = load_settings()
    specs = project_specs(settings, context.component_tree)
    automated = [spec for name, spec in specs.items() if name not in settings.paused_datasets]
    return automation_definitions(automated)
