"""Small synthetic frames and data sets for tests and benchmarks that run without the shared data
files."""

import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.lib.sources import DONE_SUFFIX, fetch_source
from mlops_assets.lib.spec import load_spec
from mlops_assets.settings import builtin_spec_path


def abalone_features(rows: int, seed: int) -> pd.DataFrame:
    """Abalone's feature columns (spec names), plausible and in range."""
    rng = np.random.default_rng(seed)
    length = rng.uniform(0.1, 0.8, rows)
    return pd.DataFrame(
        {
            "Sex": rng.choice(np.array(["M", "F", "I"], dtype=object), rows),
            "Length": length,
            "Diameter": length * 0.8 + rng.normal(0, 0.02, rows),
            "Height": length * 0.25,
            "Whole weight": length**3 * 3,
            "Shucked weight": length**3 * 1.3,
            "Viscera weight": length**3 * 0.6,
            "Shell weight": length**3 * 0.9 + rng.normal(0, 0.01, rows),
        }
    )


def iris_like_specs(folder: Path, names: Iterable[str]) -> list[str]:
    """Copies of the iris spec in `folder`, each named after its file as the spec rules require."""
    folder.mkdir(parents=True, exist_ok=True)
    text = builtin_spec_path("iris").read_text()
    names = list(names)
    for name in names:
        (folder / f"{name}.yaml").write_text(text.replace("name: iris\n", f"name: {name}\n", 1))
    return names


def iris_source() -> pd.DataFrame:
    """Iris's 150 rows, from the spec's packaged source (offline)."""
    with tempfile.TemporaryDirectory() as scratch:
        return pd.read_csv(fetch_source(load_spec(builtin_spec_path("iris")), Path(scratch)))


def iris_like(source: pd.DataFrame, rows: int, seed: int, bad: int = 0) -> pd.DataFrame:
    """`rows` new flowers: iris's rows drawn at random with a little noise on each measurement,
    so that they duplicate no row (iris's duplicate-share gate covers the whole table) and keep
    the species apart (iris's champion is trained on every partition); the first `bad` with a
    species the spec does not allow."""
    rng = np.random.default_rng(seed)
    frame = source.sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    measures = frame.columns.drop("species")
    noise = rng.normal(0, 0.05, (rows, len(measures)))
    frame[measures] = (frame[measures] + noise).clip(lower=0.1).round(4)
    frame.iloc[:bad, frame.columns.get_loc("species")] = "unknown"
    return frame


def drop_file(folder: Path, name: str, frame: pd.DataFrame, done: bool = True) -> None:
    """A file in a landing folder: written, then (if `done`) its `.done` marker."""
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / name, index=False)
    if done:
        mark_done(folder, name)


def mark_done(folder: Path, name: str) -> None:
    """The `.done` marker that says the file is complete."""
    (folder / f"{name}{DONE_SUFFIX}").touch()
