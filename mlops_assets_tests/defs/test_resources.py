"""The resources read MLFLOW_TRACKING_URI and MLOPS_MODELS_URL where a run initializes them;
unset, they are the defaults under the data dir."""

import dagster as dg

from mlops_assets.defs.resources import resources_for
from mlops_assets.settings import load_settings


def initialized(resource):
    with dg.build_resources({"resource": resource}) as built:
        return built.resource


def test_a_set_variable_is_read_by_the_run_not_fixed_when_the_code_loads(settings, monkeypatch):
    monkeypatch.setenv("MLOPS_MODELS_URL", "http://models.internal/a")
    resources = resources_for(load_settings())
    monkeypatch.setenv("MLOPS_MODELS_URL", "http://models.internal/b")
    assert initialized(resources["model_store"]).location() == "http://models.internal/b"
    assert initialized(resources["mlflow"]).tracking_uri == settings.tracking_uri


def test_unset_variables_give_the_defaults_under_the_data_dir(settings, monkeypatch):
    monkeypatch.delenv("MLOPS_MODELS_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    resources = resources_for(load_settings())
    assert initialized(resources["model_store"]).location() == str(settings.models_dir)
    tracking = initialized(resources["mlflow"])
    assert tracking.tracking_uri == f"sqlite:///{settings.data_dir / 'mlflow.db'}"
