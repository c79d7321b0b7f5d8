"""MLflow calls of the pipeline, against a real MLflow tracking server on a temp SQLite file."""

import tempfile

import mlflow
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from mlops_assets.lib import registry
from mlops_assets_tests.deploy.services import start_mlflow_server


@pytest.mark.slow
def test_loading_a_model_from_a_server_leaves_no_temp_folder(tmp_path, monkeypatch):
    url, server = start_mlflow_server(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path)
    try:
        mlflow.set_tracking_uri(url)
        # its own experiment: another test may have left mlflow's active experiment id set
        experiment = mlflow.MlflowClient(url).create_experiment("loading")
        x, y = np.arange(20.0).reshape(10, 2), np.arange(10.0)
        with mlflow.start_run(experiment_id=experiment):
            uri = mlflow.sklearn.log_model(LinearRegression().fit(x, y), name="model").model_uri
        system_temp = tmp_path / "system-temp"
        system_temp.mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
        model = registry.load_model(uri)  # downloaded over HTTP
        assert model.predict(x) == pytest.approx(y)
        assert list(system_temp.iterdir()) == []
    finally:
        server.stop()
        mlflow.set_tracking_uri(None)
