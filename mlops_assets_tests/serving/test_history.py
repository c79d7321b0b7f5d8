"""A series' history on disk: synced appends, replayed by every reader, a torn line skipped."""

from __future__ import annotations

from datetime import UTC, datetime

from mlops_contract.series import Series, SeriesFeature
from serving.history import SeriesHistory

SERIES = Series("Date", None, (SeriesFeature("EUR_lag1", "EUR", "lag", 1),))
WINDOW = {"columns": ["EUR"], "rows": [[None, "2026-01-01", 10.0]]}


def observation(day: str, eur: float) -> dict:
    return {"entity": None, "day": day, "values": {"EUR": eur}}


def test_another_reader_replays_what_one_recorded_past_a_torn_line(tmp_path):
    writer = SeriesHistory(SERIES, WINDOW, tmp_path)
    log = tmp_path / f"{datetime.now(UTC):%Y-%m-%d}.jsonl"
    writer.record([observation("2026-01-02", 11.0)])
    with log.open("ab") as handle:  # a writer killed mid-line
        handle.write(b'{"received_at": "2026-01-03", "observ')
    writer.record([observation("2026-01-03", 12.0)])
    reader = SeriesHistory(SERIES, WINDOW, tmp_path)
    assert reader.features(None, "2026-01-04") == ([12.0], None)
    assert reader.features(None, "2026-01-03") == ([11.0], None)
    assert log.read_bytes().count(b"\n") == 3  # the torn line was closed, not glued to the next
