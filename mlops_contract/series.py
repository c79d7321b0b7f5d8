"""Features of a series computed from its history: lags and windows over earlier observations.

One rule per feature (`SeriesFeature`): the pipeline compiles it to DuckDB SQL over the validated
rows, the server evaluates it over the observations it keeps. Both take the `n` observations of
the same entity strictly before the row, in time order, and add them oldest first, so the two give
the same numbers, bit for bit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Kind = Literal["lag", "mean", "min", "max"]
KINDS: tuple[str, ...] = ("lag", "mean", "min", "max")


@dataclass(frozen=True)
class SeriesFeature:
    name: str  # the model column
    column: str  # the observed column it is computed from
    kind: Kind  # lag n, or mean / min / max of the n observations before the row
    n: int

    def value(self, before: list[Any]) -> float | None:
        """The feature from the column's values before the row (oldest first); None when the
        history holds none to compute it from, as SQL gives NULL."""
        if self.kind == "lag":
            return before[-self.n] if len(before) >= self.n else None
        window = [v for v in before[-self.n :] if v is not None]
        if not window:
            return None
        if self.kind == "mean":
            total = 0.0
            for value in window:
                total += value
            return total / len(window)
        return min(window) if self.kind == "min" else max(window)


@dataclass(frozen=True)
class Series:
    """A data set's series: its time column, an optional entity column (one history each), the
    features computed from history, and how old the last observation may be for a request."""

    time: str
    entity: str | None
    features: tuple[SeriesFeature, ...]
    max_gap_days: int | None = None

    @property
    def depth(self) -> int:
        """How many earlier observations a request needs."""
        return max(feature.n for feature in self.features)

    @property
    def observed(self) -> tuple[str, ...]:
        """The columns whose history is kept."""
        return tuple(dict.fromkeys(feature.column for feature in self.features))

    def to_manifest(self) -> dict[str, Any]:
        return {**asdict(self), "features": [asdict(f) for f in self.features]}

    @classmethod
    def from_manifest(cls, entry: dict[str, Any]) -> Series:
        features = tuple(SeriesFeature(**feature) for feature in entry["features"])
        return cls(entry["time"], entry.get("entity"), features, entry.get("max_gap_days"))
