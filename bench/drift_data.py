"""Seeded frames for the drift benchmark: 10 features of realistic shapes, with and without drift.

Every feature is drawn from a fixed distribution; the drift scenario changes four of them in a
known way, so each tool's verdict can be checked against the truth. The shapes are chosen to be
typical of tabular monitoring data, not to favour either tool.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NUMERIC = "numeric"
CATEGORICAL = "categorical"

# (name, kind, shape in words)
FEATURES = (
    ("age", NUMERIC, "normal(40, 12)"),
    ("income", NUMERIC, "lognormal(10.5, 0.7), right-skewed"),
    ("items_in_cart", NUMERIC, "Poisson(2): coarse integers, many ties"),
    ("rating", NUMERIC, "integer 1-5 (shares .05/.10/.20/.35/.30)"),
    ("discount_share", NUMERIC, "beta(2, 5), bounded in [0, 1]"),
    ("wait_minutes", NUMERIC, "40% exactly 0, else exponential(mean 8), 0.1 steps"),
    ("country", CATEGORICAL, "6 common countries, 2 rare (0.4%, 0.2%)"),
    ("device", CATEGORICAL, "mobile 60%, desktop 35%, tablet 5%"),
    ("channel", CATEGORICAL, "4 common channels, 2 rare (0.8%, 0.2%)"),
    ("payment", CATEGORICAL, "card 70%, paypal 20%, transfer 9.5%, crypto 0.5% (rare)"),
)
KINDS = {name: kind for name, kind, _ in FEATURES}

COUNTRIES = {
    "DE": 0.30, "FR": 0.22, "IT": 0.16, "ES": 0.12, "NL": 0.10, "PL": 0.094, "LU": 0.004,
    "MT": 0.002,
}  # fmt: skip
DEVICES = {"mobile": 0.60, "desktop": 0.35, "tablet": 0.05}
CHANNELS = {
    "organic": 0.45, "ads": 0.30, "email": 0.15, "social": 0.09, "partner": 0.008,
    "affiliate": 0.002,
}  # fmt: skip
PAYMENTS = {"card": 0.70, "paypal": 0.20, "transfer": 0.095, "crypto": 0.005}
RATINGS = {1: 0.05, 2: 0.10, 3: 0.20, 4: 0.35, 5: 0.30}

# The drift scenario: what changes, in words (the truth the verdicts are compared with).
DRIFT = {
    "age": "mean +0.6 years (0.05 standard deviations): small but real",
    "income": "every value x1.25: large",
    "device": "mobile 60% -> 68%, desktop 35% -> 28%, tablet 5% -> 4%",
    "channel": "rare 'partner' 0.8% -> 3% (taken from 'organic' 45% -> 42.8%)",
}
DRIFTED_DEVICES = {"mobile": 0.68, "desktop": 0.28, "tablet": 0.04}
DRIFTED_CHANNELS = {**CHANNELS, "organic": 0.428, "partner": 0.03}
SCENARIOS = ("no drift", "drift")


def frame(rows: int, rng: np.random.Generator, drifted: bool = False) -> pd.DataFrame:
    """One frame of `rows` rows; categorical columns hold Python str (object dtype), as a
    DuckDB query returns them."""
    age_shift = 0.6 if drifted else 0.0
    income_scale = 1.25 if drifted else 1.0
    return pd.DataFrame(
        {
            "age": rng.normal(40 + age_shift, 12, rows),
            "income": rng.lognormal(10.5, 0.7, rows) * income_scale,
            "items_in_cart": rng.poisson(2, rows),
            "rating": _choice(rng, RATINGS, rows).astype(np.int64),
            "discount_share": rng.beta(2, 5, rows),
            "wait_minutes": _zero_inflated(rng, rows),
            "country": _choice(rng, COUNTRIES, rows),
            "device": _choice(rng, DRIFTED_DEVICES if drifted else DEVICES, rows),
            "channel": _choice(rng, DRIFTED_CHANNELS if drifted else CHANNELS, rows),
            "payment": _choice(rng, PAYMENTS, rows),
        }
    )


def _choice(rng: np.random.Generator, shares: dict, rows: int) -> np.ndarray:
    values = np.array(list(shares), dtype=object)
    probabilities = np.array(list(shares.values()), dtype=float)
    # shared value objects: a million-row column costs 8 bytes a row, not a str object each
    return values[rng.choice(values.size, size=rows, p=probabilities / probabilities.sum())]


def _zero_inflated(rng: np.random.Generator, rows: int) -> np.ndarray:
    waiting = rng.exponential(8, rows).round(1)
    return np.where(rng.random(rows) < 0.4, 0.0, waiting)


def scenario_frames(rows: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """The reference and one current frame per scenario, all `rows` rows, from one seed."""
    rng = np.random.default_rng(seed)
    frames = {"reference": frame(rows, rng)}
    for name in SCENARIOS:
        frames[name] = frame(rows, rng, drifted=name == "drift")
    return frames


def truth(scenario: str) -> dict[str, bool]:
    """Per feature: did its distribution change in this scenario?"""
    return {name: scenario == "drift" and name in DRIFT for name in KINDS}
