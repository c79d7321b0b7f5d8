"""How a date feature becomes model inputs: one rule, inside the fitted model.

A date column that is a feature reaches the model as a date; the model's first step splits it into
the parts below with `date_parts`. The training pipeline and the prediction server both run that
step as part of the same pickled model, so a date is decomposed the same way offline and online.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DATE_PARTS = (
    "year",
    "quarter",
    "month",
    "week_of_year",  # ISO 8601 week
    "day",
    "day_of_week",  # Monday = 0
    "day_of_year",
    "is_weekend",
    "is_month_start",
    "is_month_end",
)


def _parts(values: pd.Series) -> list[pd.Series]:
    day = values.dt
    return [
        day.year,
        day.quarter,
        day.month,
        day.isocalendar().week,
        day.day,
        day.dayofweek,
        day.dayofyear,
        day.dayofweek >= 5,
        day.is_month_start,
        day.is_month_end,
    ]


def date_parts(dates) -> np.ndarray:
    """One float column per part per date column (a missing date gives NaN parts)."""
    frame = pd.DataFrame(dates)
    blocks = []
    for name in frame.columns:
        values = pd.to_datetime(frame[name], errors="coerce")
        known = values.notna().to_numpy()
        for part in _parts(values):
            blocks.append(np.where(known, part.to_numpy(dtype=np.float64, na_value=np.nan), np.nan))
    return np.column_stack(blocks) if blocks else np.empty((len(frame), 0))


def date_part_names(_transformer, columns) -> list[str]:
    """The names of `date_parts`' output columns, `<column>_<part>` (the signature is that of
    scikit-learn's `FunctionTransformer(feature_names_out=...)`)."""
    return [f"{column}_{part}" for column in columns for part in DATE_PARTS]
