"""Small synthetic frames for tests that fit models without the shared data files."""

import numpy as np
import pandas as pd


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
