"""Serving settings, read from the environment once at app creation.

The server reads its own variables; the values it shares with the pipeline, where the model
bundles live, come from the same documented variables (`MLOPS_DATA_DIR`, default `data`, and
`MLOPS_MODELS_URL`, default `$MLOPS_DATA_DIR/models`). A remote models URL is mirrored into a
local cache folder (`MLOPS_MODELS_CACHE`, default `$MLOPS_DATA_DIR/models-cache/<url hash>`),
which the server then reads like a local models folder. The server's logs (predictions, feedback,
observations) go under `MLOPS_LOGS_DIR`, default `$MLOPS_DATA_DIR`: the folder it shares with the
pipeline when the two run apart.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from mlops_contract.location import is_remote, local_path


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def _share(name: str, default: float) -> float:
    value = _env_float(name, default)
    if not 0 <= value <= 1:
        raise ValueError(f"{name}={value}: a share of requests, between 0 and 1")
    return value


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


@dataclass(frozen=True)
class ServingConfig:
    models_dir: Path  # the folder the store reads: the models folder, or the remote's cache
    predictions_dir: Path
    models_url: str | None = None  # a remote location mirrored into models_dir
    api_key: str | None = None
    max_body_bytes: int = 1 << 20
    reload_interval: float = 1.0
    verify_interval: float = 60.0
    batch_wait_ms: float = 2.0
    batch_max_rows: int = 256
    log_queue_size: int = 100_000
    log_flush_interval: float = 1.0
    shadow_share: float = 1.0  # of requests the challenger scores in the shadow (serving.shadow)

    @property
    def observations_dir(self) -> Path:
        """Where `POST /models/{name}/observations` appends a series' observations."""
        return self.predictions_dir.parent / "observations"

    @property
    def shadow_dir(self) -> Path:
        """Where the challenger's shadow predictions are appended (serving.shadow)."""
        return self.predictions_dir.parent / "shadow"

    @property
    def feedback_dir(self) -> Path:
        """Where `POST /models/{name}/feedback` appends its labels (serving.feedback)."""
        return self.predictions_dir.parent / "feedback"


def config_from_env(models_dir: Path | None = None, **overrides) -> ServingConfig:
    """Settings from MLOPS_* variables; explicit arguments win."""
    data_dir = Path(os.environ.get("MLOPS_DATA_DIR") or "data").expanduser().resolve()
    models_url = None if models_dir is not None else os.environ.get("MLOPS_MODELS_URL") or None
    # an explicit models_dir keeps its predictions beside it (tests, embedded use)
    logs_dir = Path(os.environ.get("MLOPS_LOGS_DIR") or data_dir).expanduser().resolve()
    predictions_dir = Path(models_dir).parent if models_dir else logs_dir
    predictions_dir = predictions_dir / "predictions"
    if is_remote(models_url):
        models_dir = Path(os.environ.get("MLOPS_MODELS_CACHE") or _cache_dir(data_dir, models_url))
    else:
        if models_dir is None:
            models_dir = local_path(models_url) if models_url else data_dir / "models"
        models_dir, models_url = Path(models_dir), None
    values = {
        "models_dir": models_dir,
        "models_url": models_url,
        "predictions_dir": predictions_dir,
        "api_key": os.environ.get("MLOPS_API_KEY") or None,
        "max_body_bytes": _env_int("MLOPS_MAX_BODY_BYTES", 1 << 20),
        "reload_interval": _env_float("MLOPS_RELOAD_INTERVAL", 1.0),
        "verify_interval": _env_float("MLOPS_VERIFY_INTERVAL", 60.0),
        "batch_wait_ms": _env_float("MLOPS_BATCH_WAIT_MS", 2.0),
        "batch_max_rows": _env_int("MLOPS_BATCH_MAX_ROWS", 256),
        "shadow_share": _share("MLOPS_SHADOW_SHARE", 1.0),
    }
    values.update({key: value for key, value in overrides.items() if value is not None})
    return ServingConfig(**values)


def _cache_dir(data_dir: Path, models_url: str) -> Path:
    digest = hashlib.sha256(models_url.encode()).hexdigest()[:12]
    return data_dir / "models-cache" / digest
