"""MLflow calls of the pipeline, against a real MLflow tracking server on a temp SQLite file."""

import tempfile

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from mlops_assets.lib import model_card, registry
from mlops_assets_tests.deploy.services import start_mlflow_server


@pytest.mark.slow
def test_logging_and_loading_a_model_on_a_server_leave_no_temp_folder(tmp_path, monkeypatch):
    url, server = start_mlflow_server(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path)
    try:
        mlflow.set_tracking_uri(url)
        # its own experiment: another test may have left mlflow's active experiment id set
        experiment = mlflow.MlflowClient(url).create_experiment("temp-folders")
        x = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0) ** 2})
        y = np.arange(10.0)
        system_temp = tmp_path / "system-temp"
        system_temp.mkdir()
        monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
        with mlflow.start_run(experiment_id=experiment):  # uploaded over HTTP
            model = LinearRegression().fit(x, y)
            logged = registry.log_candidate("toy", "linear", model, {}, {"test_r2": 1.0}, x)
            model_card.log_to_mlflow(logged.run_id, {"card.md": b"# toy\n"})
        loaded = registry.load_model(logged.model_uri)  # downloaded over HTTP
        assert loaded.predict(x) == pytest.approx(y)
        assert list(system_temp.iterdir()) == []
    finally:
        server.stop()
        mlflow.set_tracking_uri(None)
