"""MLflow calls: log a candidate run, read and move the `champion` / `challenger` aliases."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import sklearn
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class LoggedCandidate:
    run_id: str
    model_uri: str


def pip_requirements() -> list[str]:
    """Explicit requirements: MLflow's inference runs a subprocess and costs seconds per model."""
    import skops

    return [
        f"scikit-learn=={sklearn.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
        f"skops=={skops.__version__}",
        f"mlflow=={mlflow.__version__}",
    ]


def trusted_types(model) -> list[str]:
    """The types skops would refuse to load (e.g. HistGradientBoosting's TreePredictor)."""
    import skops.io

    return skops.io.get_untrusted_types(data=skops.io.dumps(model))


def log_candidate(
    dataset: str,
    family: str,
    model,
    params: dict[str, Any],
    metrics: dict[str, float],
    x_example: pd.DataFrame,
) -> LoggedCandidate:
    """One nested MLflow run per candidate, ended FINISHED or FAILED by the `with` block."""
    with mlflow.start_run(
        run_name=f"{dataset}-{family}", nested=True, tags={"dataset": dataset, "family": family}
    ) as run:
        mlflow.log_params({"family": family, **params})
        mlflow.log_metrics(metrics)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(x_example, model.predict(x_example)),
            input_example=x_example.head(3),
            pip_requirements=pip_requirements(),
            skops_trusted_types=trusted_types(model),
        )
        return LoggedCandidate(run.info.run_id, info.model_uri)


def load_model(model_uri: str):
    return mlflow.sklearn.load_model(model_uri)


def champion_version(client: MlflowClient, name: str):
    """The registry version holding alias `champion`, or None."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def register(name: str, model_uri: str, tags: dict[str, str]) -> str:
    """A new registry version of `name` for a logged model; returns the version number."""
    return str(mlflow.register_model(model_uri, name, tags=tags).version)


def python_version() -> str:
    return platform.python_version()
