"""The observations a series model's features are computed from (`mlops_contract.series`).

A history starts from the window the bundle carries (`history.json`: the last observations per
entity at promotion) and follows `<observations_dir>/<dataset>/*.jsonl`, where every observation
posted to `POST /models/{name}/observations` is appended (and synced) before it is acknowledged:
a restart, or another worker, replays the files and loses nothing. A later observation for the
same entity and day replaces the earlier one.
"""

from __future__ import annotations

import bisect
import json
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from mlops_contract.series import Series
from serving.prediction_log import append_lines

LOG_SUFFIX = ".jsonl"


class SeriesHistory:
    def __init__(self, series: Series, window: dict[str, Any], log_dir: Path) -> None:
        self.series = series
        self.log_dir = log_dir
        self._times: dict[str | None, list[str]] = {}
        self._values: dict[str | None, list[dict[str, Any]]] = {}
        self._read: dict[str, int] = {}  # log file -> bytes replayed
        self._lock = threading.Lock()
        columns = window["columns"]
        for entity, day, *values in window["rows"]:
            self._add(entity, day, dict(zip(columns, values, strict=True)))

    def _add(self, entity: str | None, day: str, values: dict[str, Any]) -> None:
        times = self._times.setdefault(entity, [])
        kept = self._values.setdefault(entity, [])
        position = bisect.bisect_left(times, day)
        if position < len(times) and times[position] == day:
            kept[position] = values
        else:
            times.insert(position, day)
            kept.insert(position, values)

    def features(self, entity: str | None, day: str) -> tuple[list | None, str | None]:
        """The series features of a request of `entity` on `day`, or why there are none."""
        with self._lock:
            self._replay()
            times = self._times.get(entity, [])
            before = bisect.bisect_left(times, day)
            series = self.series
            who = "" if series.entity is None else f" of {series.entity} {entity!r}"
            if before < series.depth:
                return None, (
                    f"needs {series.depth} observations{who} before {day}, has {before}; "
                    "send them to POST /models/{name}/observations"
                )
            last = times[before - 1]
            gap = (date.fromisoformat(day) - date.fromisoformat(last)).days
            if series.max_gap_days is not None and gap > series.max_gap_days:
                return None, (
                    f"the last observation{who} before {day} is from {last}, more than "
                    f"{series.max_gap_days} days before (series.max_gap_days)"
                )
            history = self._values[entity][before - series.depth : before]
        return [f.value([o.get(f.column) for o in history]) for f in series.features], None

    def record(self, observations: list[dict[str, Any]]) -> None:
        """Append observations ({"entity", "day", "values"}) to today's log, synced, then keep
        them; the caller acknowledges only after this returns."""
        line = json.dumps(
            {"received_at": datetime.now(UTC).isoformat(), "observations": observations}
        )
        path = self.log_dir / f"{datetime.now(UTC):%Y-%m-%d}{LOG_SUFFIX}"
        append_lines(path, (line + "\n").encode(), sync=True)
        with self._lock:
            self._replay()

    def _replay(self) -> None:
        """Take in the log lines not read yet (complete lines only, from every writer)."""
        if not self.log_dir.is_dir():
            return
        for path in sorted(self.log_dir.glob(f"*{LOG_SUFFIX}")):
            start = self._read.get(path.name, 0)
            if path.stat().st_size <= start:
                continue
            with path.open("rb") as handle:
                handle.seek(start)
                data = handle.read()
            complete = data[: data.rfind(b"\n") + 1]
            self._read[path.name] = start + len(complete)
            for line in complete.splitlines():
                try:
                    observations = json.loads(line)["observations"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a crash mid-write, closed by the next append
                for item in observations:
                    self._add(item["entity"], item["day"], item["values"])
