"""The prediction server and the pipeline agree on where the server's logs are, by default and
with `MLOPS_LOGS_DIR` (the folder both mount when they run apart, docs/deploy.md)."""

from __future__ import annotations

import pytest

from mlops_assets.settings import load_settings
from serving.config import config_from_env


@pytest.mark.parametrize("shared", [False, True])
def test_server_and_pipeline_share_the_logs_folder(settings, tmp_path, monkeypatch, shared):
    logs_dir = tmp_path / "shared" if shared else settings.data_dir
    if shared:
        monkeypatch.setenv("MLOPS_LOGS_DIR", str(logs_dir))
    server, pipeline = config_from_env(), load_settings()
    assert server.predictions_dir == pipeline.predictions_dir == logs_dir / "predictions"
    assert server.feedback_dir == pipeline.feedback_dir == logs_dir / "feedback"
    assert server.observations_dir == logs_dir / "observations"
