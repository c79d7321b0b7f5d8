"""The set of served models: one slot per data set directory, swapped atomically on reload.

A slot only ever moves forward to a model that loaded and passed its checks; a failed load is
remembered (and shown) but never replaces the model being served.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from mlops_assets.lib.bundle import BundleError, load_bundle, read_pointer
from serving.model import LoadedModel, from_bundle

log = logging.getLogger("serving.store")


@dataclass(frozen=True)
class Slot:
    dataset: str
    model: LoadedModel | None = None
    has_pointer: bool = False
    error: str | None = None
    # what the last attempt looked at, so an unchanged broken bundle is not reloaded every poll
    attempted: tuple | None = None


def champion_asset(dataset: str) -> str:
    return f"{dataset}/champion_model"


def _fingerprint(dataset_dir: Path, pointer: dict) -> tuple:
    bundle_dir = dataset_dir / "bundles" / str(pointer.get("bundle"))
    try:
        files = sorted(
            (entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
            for entry in bundle_dir.iterdir()
        )
    except OSError:
        files = []
    return (pointer.get("bundle"), pointer.get("manifest_sha256"), tuple(files))


class ModelStore:
    def __init__(
        self,
        models_dir: Path,
        on_loaded: Callable[[LoadedModel, LoadedModel | None], None] = lambda new, old: None,
        on_failed: Callable[[str, str], None] = lambda dataset, error: None,
    ) -> None:
        self.models_dir = Path(models_dir)
        self._slots: dict[str, Slot] = {}
        self._on_loaded = on_loaded
        self._on_failed = on_failed

    def slot(self, dataset: str) -> Slot | None:
        return self._slots.get(dataset)

    def slots(self) -> list[Slot]:
        return sorted(self._slots.values(), key=lambda slot: slot.dataset)

    def model(self, dataset: str) -> LoadedModel | None:
        slot = self._slots.get(dataset)
        return slot.model if slot else None

    def loaded(self) -> list[LoadedModel]:
        return [slot.model for slot in self.slots() if slot.model is not None]

    def refresh(self) -> None:
        """Look at every data set directory once; load what changed. Blocking: run in a thread."""
        if not self.models_dir.is_dir():
            return
        for dataset_dir in sorted(self.models_dir.iterdir()):
            if dataset_dir.is_dir() and not dataset_dir.name.startswith("."):
                self._refresh_one(dataset_dir)

    def _refresh_one(self, dataset_dir: Path) -> None:
        dataset = dataset_dir.name
        slot = self._slots.get(dataset) or Slot(dataset)
        try:
            pointer = read_pointer(dataset_dir)
        except BundleError as exc:
            self._fail(replace(slot, has_pointer=True), ("pointer", str(exc)), str(exc))
            return
        if pointer is None:
            self._slots[dataset] = replace(slot, has_pointer=False)
            return
        fingerprint = _fingerprint(dataset_dir, pointer)
        current = slot.model
        if current is not None and current.bundle_id == pointer["bundle"]:
            self._slots[dataset] = replace(slot, has_pointer=True, error=None)
            return
        if fingerprint == slot.attempted:
            return
        try:
            loaded = from_bundle(dataset, load_bundle(dataset_dir, pointer))
        except BundleError as exc:
            self._fail(replace(slot, has_pointer=True), fingerprint, str(exc))
            return
        self._slots[dataset] = Slot(dataset, loaded, True, None, fingerprint)
        log.info("loaded %s version %s (%s)", dataset, loaded.version, loaded.bundle_id)
        self._on_loaded(loaded, current)

    def _fail(self, slot: Slot, fingerprint: tuple, error: str) -> None:
        if slot.attempted == fingerprint:
            return
        self._slots[slot.dataset] = replace(slot, error=error, attempted=fingerprint)
        log.error("cannot load %s: %s", slot.dataset, error)
        self._on_failed(slot.dataset, error)
