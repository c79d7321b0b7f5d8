"""Serving settings, read from the environment once at app creation.

The server reads its own variables; the one value it shares with the pipeline, where the model
bundles live, comes from the same documented variable (`MLOPS_DATA_DIR`, default `data`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


@dataclass(frozen=True)
class ServingConfig:
    models_dir: Path
    predictions_dir: Path
    api_key: str | None = None
    max_body_bytes: int = 1 << 20
    reload_interval: float = 1.0
    verify_interval: float = 60.0
    batch_wait_ms: float = 2.0
    batch_max_rows: int = 256
    log_queue_size: int = 100_000
    log_flush_interval: float = 1.0


def config_from_env(models_dir: Path | None = None, **overrides) -> ServingConfig:
    """Settings from MLOPS_* variables; explicit arguments win."""
    data_dir = Path(os.environ.get("MLOPS_DATA_DIR") or "data").expanduser().resolve()
    if models_dir is None:
        models_dir = data_dir / "models"
    models_dir = Path(models_dir)
    values = {
        "models_dir": models_dir,
        "predictions_dir": models_dir.parent / "predictions",
        "api_key": os.environ.get("MLOPS_API_KEY") or None,
        "max_body_bytes": _env_int("MLOPS_MAX_BODY_BYTES", 1 << 20),
        "reload_interval": _env_float("MLOPS_RELOAD_INTERVAL", 1.0),
        "verify_interval": _env_float("MLOPS_VERIFY_INTERVAL", 60.0),
        "batch_wait_ms": _env_float("MLOPS_BATCH_WAIT_MS", 2.0),
        "batch_max_rows": _env_int("MLOPS_BATCH_MAX_ROWS", 256),
    }
    values.update({key: value for key, value in overrides.items() if value is not None})
    return ServingConfig(**values)
