"""The challenger scored in the shadow of the champion, off the request path.

When `<dataset>/challenger.json` names a bundle (the pipeline publishes the registry's
`challenger` there), the server loads it beside the champion; one that does not load is logged
and not shadowed, and never touches the champion. After a request was answered, `submit` only
queues it (a share of requests, `MLOPS_SHADOW_SHARE`); a daemon thread scores what is queued in
batches and appends each request's challenger predictions, under the champion's request id and
timestamp and the challenger's version, to `<data dir>/shadow/<dataset>/<YYYY-MM-DD>.jsonl`.
The response, its latency and the prediction log stay the champion's. When the queue is full the
newest requests are not shadowed (counted).
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from mlops_contract.bundle import CHALLENGER_FILE, BundleError, load_bundle, read_pointer
from serving.background import PeriodicFlush
from serving.integrity import bundle_fingerprint, damage_of, file_stats
from serving.model import LoadedModel, from_bundle
from serving.prediction_log import Served
from serving.shadow_process import Batch, ShadowProcess

log = logging.getLogger("serving.shadow")
SHADOW_INTERVAL = 0.5  # seconds between rounds: larger batches cost less per row
MAX_BATCH_ROWS = 2048  # rows per challenger call


class Challengers:
    """Per data set, the challenger bundle challenger.json names, loaded and checked; its files
    are re-verified like the champion's (serving.integrity), and a damaged or removed one stops
    being shadowed (the champion is not touched)."""

    def __init__(self, models_dir: Path, verify_interval: float = 60.0) -> None:
        self.models_dir = Path(models_dir)
        self.verify_interval = verify_interval
        self._loaded: dict[str, LoadedModel] = {}
        # data set -> bundle_fingerprint of what did not load or was damaged: tried again once
        # challenger.json or the bundle's files change
        self._failed: dict[str, tuple] = {}
        self._verified: dict[str, tuple[tuple, float]] = {}  # file stats, when hashed

    def get(self, dataset: str) -> LoadedModel | None:
        return self._loaded.get(dataset)

    def refresh(self, datasets: list[str]) -> None:
        for dataset in datasets:
            try:
                pointer = read_pointer(self.models_dir / dataset, CHALLENGER_FILE)
            except BundleError as exc:
                pointer = None
                log.warning("%s: no challenger shadowed: %s", dataset, exc)
            if pointer is None:
                self._loaded.pop(dataset, None)
            else:
                self._load(dataset, pointer)
                self._verify(dataset, pointer)
        for dataset in set(self._loaded) - set(datasets):
            del self._loaded[dataset]

    def _load(self, dataset: str, pointer: dict) -> None:
        current = self._loaded.get(dataset)
        bundle_id = pointer["bundle"]
        fingerprint = bundle_fingerprint(self.models_dir / dataset, pointer)
        if (current and current.bundle_id == bundle_id) or self._failed.get(dataset) == fingerprint:
            return
        try:
            loaded = from_bundle(dataset, load_bundle(self.models_dir / dataset, pointer))
        except BundleError as exc:
            self._stop(dataset, pointer, f"challenger bundle {bundle_id} not shadowed: {exc}")
            return
        self._failed.pop(dataset, None)
        self._loaded[dataset] = loaded
        self._verified[dataset] = (self._stats(dataset, loaded), time.monotonic())  # just hashed
        log.info("shadowing %s with challenger version %s", dataset, loaded.version)

    def _verify(self, dataset: str, pointer: dict) -> None:
        """The champion's rule: one stat per file every tick; hashing when a stat changed or
        the full verification is due."""
        loaded = self._loaded.get(dataset)
        if loaded is None:
            return
        stats, (seen, hashed_at) = self._stats(dataset, loaded), self._verified[dataset]
        if stats == seen and time.monotonic() - hashed_at < self.verify_interval:
            return
        bundle_dir = self.models_dir / dataset / "bundles" / loaded.bundle_id
        damage = damage_of(bundle_dir, loaded.manifest, pointer["manifest_sha256"])
        if damage:
            self._stop(
                dataset, pointer, f"challenger v{loaded.version} no longer shadowed: {damage}"
            )
        else:
            self._verified[dataset] = (stats, time.monotonic())

    def _stats(self, dataset: str, loaded: LoadedModel) -> tuple:
        return file_stats(self.models_dir / dataset / "bundles" / loaded.bundle_id, loaded.manifest)

    def _stop(self, dataset: str, pointer: dict, why: str) -> None:
        self._failed[dataset] = bundle_fingerprint(self.models_dir / dataset, pointer)
        self._loaded.pop(dataset, None)
        log.error("%s: %s", dataset, why)


def shadows(champion: LoadedModel, challenger: LoadedModel) -> bool:
    """Whether the challenger is another version that takes the champion's rows as they are
    (a challenger trained on another contract is not shadowed)."""
    return challenger.version != champion.version and challenger.row_layout == champion.row_layout


class ShadowScorer(PeriodicFlush):
    """Queues served requests for their challenger; every round hands the queue, in batches,
    to the shadow process (serving.shadow_process), which scores and logs them."""

    def __init__(
        self,
        models_dir: Path,
        shadow_process: ShadowProcess,
        share: float,
        max_queued: int,
        on_dropped: Callable[[int], None] = lambda count: None,
        on_scored: Callable[[str, str, int], None] = lambda name, version, rows: None,
    ) -> None:
        super().__init__(SHADOW_INTERVAL, "shadow")
        self.models_dir = Path(models_dir)
        self.process = shadow_process
        self.share = share
        self.max_queued = max_queued
        self._queue: deque[tuple[LoadedModel, list[list], Served]] = deque()
        self._on_dropped = on_dropped
        self._on_scored = on_scored

    def submit(self, challenger: LoadedModel, rows: list[list], served: Served) -> None:
        """Queue a served request for the challenger; returns at once."""
        if self.share < 1 and random.random() >= self.share:
            return
        if len(self._queue) >= self.max_queued:
            self._on_dropped(1)
            return
        self._queue.append((challenger, rows, served))

    def flush(self) -> None:
        batch: list[tuple[LoadedModel, list[list], Served]] = []
        rows = 0
        while self._queue:
            batch.append(self._queue.popleft())
            rows += len(batch[-1][1])
            if rows >= MAX_BATCH_ROWS or not self._queue:
                self._send(batch)
                batch, rows = [], 0
        self._count(self.process.scored())

    def close(self, timeout: float = 10) -> None:
        super().close(timeout)  # the last round is sent
        self._count(self.process.close())

    def _send(self, batch: list[tuple[LoadedModel, list[list], Served]]) -> None:
        by_model: dict[int, list] = {}
        for entry in batch:
            by_model.setdefault(id(entry[0]), []).append(entry)
        for entries in by_model.values():
            challenger = entries[0][0]
            handed = self.process.send(
                Batch(
                    str(self.models_dir / challenger.dataset),
                    challenger.bundle_id,
                    [row for _, request_rows, _ in entries for row in request_rows],
                    [(s.request_id, s.timestamp, s.inputs, len(r)) for _, r, s in entries],
                )
            )
            if not handed:
                self._on_dropped(len(entries))

    def _count(self, scored: list[tuple[str, str, int]]) -> None:
        for name, version, rows in scored:
            self._on_scored(name, version, rows)
