"""The run's temporary folder and its environment, the abalone source, and the champion build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SHARED_ABALONE = REPO.parent / "shared" / "data" / "abalone.csv"
ABALONE_COLUMNS = [
    "Sex",
    "Length",
    "Diameter",
    "Height",
    "Whole weight",
    "Shucked weight",
    "Viscera weight",
    "Shell weight",
    "Rings",
]
BUILD_TIMEOUT = 900.0


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.data_dir / 'mlflow.db'}"

    def base_env(self) -> dict[str, str]:
        """The caller's environment without MLOPS_* / MLflow / Dagster settings, pointed here."""
        drop = ("MLOPS_", "MLFLOW_", "DAGSTER_")
        env = {key: value for key, value in os.environ.items() if not key.startswith(drop)}
        env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = str(REPO)
        env["MLOPS_DATA_DIR"] = str(self.data_dir)
        env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        env["DAGSTER_HOME"] = str(self.root / "dagster_home")
        return env


@contextmanager
def workspace_folder(reuse: Path | None) -> Iterator[Path]:
    """A fresh temporary folder (removed afterwards), or the one given with --reuse."""
    if reuse is not None:
        yield reuse.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as folder:
        yield Path(folder)


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file ("" when there is none)."""
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def abalone_source(workspace: Workspace) -> tuple[Path, str]:
    """The abalone CSV to build from: MLOPS_SOURCE_ABALONE, the shared copy, or synthetic."""
    configured = os.environ.get("MLOPS_SOURCE_ABALONE")
    if configured and Path(configured).is_file():
        return Path(configured), "MLOPS_SOURCE_ABALONE"
    if SHARED_ABALONE.is_file():
        return SHARED_ABALONE, "shared UCI copy"
    path = workspace.root / "abalone.csv"
    write_synthetic_abalone(path)
    return path, "synthetic (UCI copy absent)"


def write_synthetic_abalone(path: Path, rows: int = 4177, seed: int = 0) -> None:
    """An abalone-shaped CSV with a header row and plausible, in-range values."""
    rng = np.random.default_rng(seed)
    length = rng.uniform(0.15, 0.75, rows)
    whole = np.clip(2.2 * length**3 * rng.normal(1, 0.1, rows), 0.01, 2.8)
    frame = pd.DataFrame(
        {
            "Sex": rng.choice(["M", "F", "I"], rows),
            "Length": length.round(3),
            "Diameter": (0.8 * length * rng.normal(1, 0.03, rows)).round(3),
            "Height": (0.27 * length * rng.normal(1, 0.1, rows)).round(3),
            "Whole weight": whole.round(4),
            "Shucked weight": (0.43 * whole).round(4),
            "Viscera weight": (0.22 * whole).round(4),
            "Shell weight": (0.29 * whole).round(4),
            "Rings": np.clip((4 + 20 * length * rng.normal(1, 0.2, rows)).round(), 1, 29),
        }
    )
    frame["Rings"] = frame["Rings"].astype(int)
    frame.to_csv(path, index=False)


def read_abalone(path: Path) -> pd.DataFrame:
    first = path.open().readline()
    header = 0 if first.startswith("Sex") else None
    return pd.read_csv(path, header=header, names=ABALONE_COLUMNS)


def build_champions(workspace: Workspace, datasets: tuple[str, ...], source: Path) -> float:
    """`mlops build` in the workspace; returns its duration in seconds."""
    home = workspace.root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {**workspace.base_env(), "MLOPS_SOURCE_ABALONE": str(source)}
    log = workspace.root / "build.log"
    started = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.call(
            [str(VENV_BIN / "mlops"), "build", *datasets],
            cwd=workspace.root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT,
        )
    if code != 0:
        raise RuntimeError(f"mlops build failed ({code}):\n{tail(log)}")
    return time.perf_counter() - started


def read_manifest(workspace: Workspace, dataset: str) -> tuple[dict, Path]:
    dataset_dir = workspace.models_dir / dataset
    bundle = json.loads((dataset_dir / "current.json").read_text())["bundle"]
    bundle_dir = dataset_dir / "bundles" / bundle
    return json.loads((bundle_dir / "manifest.json").read_text()), bundle_dir / "model.joblib"


def copy_peer_models(workspace: Workspace, datasets: tuple[str, ...]) -> Path:
    """The champions' fitted pipelines as `<dataset>.joblib`, where the FastAPI peer loads them."""
    folder = workspace.root / "peer_models"
    folder.mkdir(exist_ok=True)
    for dataset in datasets:
        shutil.copy(read_manifest(workspace, dataset)[1], folder / f"{dataset}.joblib")
    return folder
