"""A small declared data set (a spec and a generated CSV) for the reliability tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPEC = """
name: {name}
source: {name}.csv
columns:
  - {{name: x1, type: float}}
  - {{name: x2, type: float}}
  - {{name: group, type: category, allowed: [a, b, c]}}
  - {{name: y, type: float}}
derived:
  - {{name: x_sum, sql: "{derived_sql}"}}
target: y
task: regression
split: {{method: random, seed: 1, test_fraction: 0.2}}
gates: {{min_rows: 100, baseline_margin: 0.05}}
cv_folds: 2
"""


def write_dataset(
    folder: Path, name: str = "synth", rows: int = 3000, derived_sql: str = "x1 + x2"
) -> Path:
    """A linear regression problem with a category; returns the spec file."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=rows), rng.normal(size=rows)
    groups = rng.choice(["a", "b", "c"], size=rows)
    y = 3 * x1 - 2 * x2 + (groups == "b") + rng.normal(scale=0.1, size=rows)
    lines = ["x1,x2,group,y"] + [
        f"{a:.5f},{b:.5f},{g},{t:.5f}" for a, b, g, t in zip(x1, x2, groups, y, strict=True)
    ]
    (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
    spec = folder / f"{name}.yaml"
    spec.write_text(SPEC.format(name=name, derived_sql=derived_sql))
    return spec
