"""The set of served models: one slot per data set directory, swapped atomically on reload.

A slot only ever moves forward to a model that loaded and passed its checks; a failed load is
remembered (and shown) but never replaces the model being served. The bundle a model came from
is re-verified on every tick (see serving.integrity): damage is reported, the model in memory
keeps serving. A slot with no model yet falls back to the newest intact older bundle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from mlops_contract.bundle import (
    POINTER_FILE,
    PUBLISHER_ASSET,
    BundleError,
    load_bundle,
    pointer_for,
    read_pointer,
)
from serving.integrity import bundle_fingerprint, damage_of, file_stats, older_bundles
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
    damage: str | None = None  # the loaded model's bundle on disk no longer matches it
    fallback_from: str | None = None  # the current bundle that was damaged when this loaded
    pointer_error: str | None = None  # current.json missing (with bundles) or unreadable
    manifest_sha: str | None = None  # of the loaded model's manifest
    verified: tuple | None = None  # file stats at the last full verification
    verified_at: float = 0.0  # time.monotonic() of that verification


def champion_asset(dataset: str) -> str:
    return f"{dataset}/{PUBLISHER_ASSET}"


class ModelStore:
    def __init__(
        self,
        models_dir: Path,
        on_loaded: Callable[[LoadedModel, LoadedModel | None], None] = lambda new, old: None,
        on_failed: Callable[[str, str], None] = lambda dataset, error: None,
        verify_interval: float = 60.0,
    ) -> None:
        self.models_dir = Path(models_dir)
        self.verify_interval = verify_interval
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
        """Look at every data set directory once; load what changed and re-verify what is
        served. Blocking: run in a thread."""
        present = set()
        if self.models_dir.is_dir():
            for dataset_dir in sorted(self.models_dir.iterdir()):
                if dataset_dir.is_dir() and not dataset_dir.name.startswith("."):
                    present.add(dataset_dir.name)
                    self._refresh_one(dataset_dir)
        for dataset, slot in list(self._slots.items()):
            if slot.model is None and dataset not in present:
                del self._slots[dataset]
            elif slot.model is not None:
                self._slots[dataset] = self._verified(slot)

    def _verified(self, slot: Slot) -> Slot:
        model = slot.model
        bundle_dir = self.models_dir / slot.dataset / "bundles" / model.bundle_id
        stats = file_stats(bundle_dir, model.manifest)
        if stats == slot.verified and time.monotonic() - slot.verified_at < self.verify_interval:
            return slot
        damage = damage_of(bundle_dir, model.manifest, slot.manifest_sha)
        if damage and damage != slot.damage:
            log.error("bundle of %s version %s is damaged: %s", slot.dataset, model.version, damage)
            self._on_failed(slot.dataset, damage)
        elif slot.damage and not damage:
            log.warning("bundle of %s version %s is intact again", slot.dataset, model.version)
        return replace(slot, damage=damage, verified=stats, verified_at=time.monotonic())

    def _refresh_one(self, dataset_dir: Path) -> None:
        dataset = dataset_dir.name
        slot = self._slots.get(dataset) or Slot(dataset)
        try:
            pointer = read_pointer(dataset_dir)
        except BundleError as exc:
            self._pointer_lost(dataset_dir, slot, str(exc))
            return
        if pointer is None:
            if next(older_bundles(dataset_dir, exclude=""), None) is not None:
                self._pointer_lost(dataset_dir, slot, f"{dataset_dir / POINTER_FILE} is missing")
            else:
                self._slots[dataset] = replace(slot, has_pointer=False, pointer_error=None)
            return
        fingerprint = bundle_fingerprint(dataset_dir, pointer)
        current = slot.model
        if current is not None and current.bundle_id == pointer["bundle"]:
            self._slots[dataset] = replace(
                slot, has_pointer=True, error=None, pointer_error=None, fallback_from=None
            )
            return
        if fingerprint == slot.attempted:
            return
        try:
            if str(pointer["bundle"]).startswith("."):
                raise BundleError(f"{dataset_dir}: pointer names a staging folder")
            loaded = from_bundle(dataset, load_bundle(dataset_dir, pointer))
        except BundleError as exc:
            fallback = self._fallback(dataset_dir, pointer["bundle"]) if current is None else None
            if fallback is None:
                self._fail(replace(slot, has_pointer=True), fingerprint, str(exc))
                return
            self._fail(replace(fallback, attempted=None), fingerprint, str(exc))
            self._on_loaded(fallback.model, None)
            return
        self._slots[dataset] = self._loaded_slot(dataset_dir, loaded, fingerprint, pointer)
        log.info("loaded %s version %s (%s)", dataset, loaded.version, loaded.bundle_id)
        self._on_loaded(loaded, current)

    def _pointer_lost(self, dataset_dir: Path, slot: Slot, problem: str) -> None:
        """current.json is unreadable, or missing while bundles exist: the model in memory keeps
        serving, or else the newest intact bundle; either way the problem is reported."""
        if slot.pointer_error != problem:
            log.error("%s: %s", dataset_dir.name, problem)
        if slot.model is None:
            if slot.attempted == ("pointer", problem):
                return
            fallback = self._fallback(dataset_dir, exclude=POINTER_FILE)
            if fallback is None:
                self._fail(replace(slot, has_pointer=True), ("pointer", problem), problem)
                return
            slot = fallback
            self._on_loaded(fallback.model, None)
        self._slots[slot.dataset] = replace(slot, has_pointer=True, pointer_error=problem)

    def _loaded_slot(
        self, dataset_dir: Path, loaded: LoadedModel, fingerprint: tuple | None, pointer: dict
    ) -> Slot:
        bundle_dir = dataset_dir / "bundles" / loaded.bundle_id
        return Slot(
            dataset_dir.name,
            loaded,
            has_pointer=True,
            attempted=fingerprint,
            manifest_sha=pointer["manifest_sha256"],
            verified=file_stats(bundle_dir, loaded.manifest),  # load_bundle just hashed them
            verified_at=time.monotonic(),
        )

    def _fallback(self, dataset_dir: Path, exclude: str) -> Slot | None:
        """The newest bundle other than `exclude` (the broken current bundle, or the broken
        pointer) that verifies against its own manifest, as a slot."""
        for bundle_id in older_bundles(dataset_dir, exclude=str(exclude)):
            try:
                pointer = pointer_for(dataset_dir, bundle_id)
                loaded = from_bundle(dataset_dir.name, load_bundle(dataset_dir, pointer))
            except (BundleError, OSError, ValueError, KeyError) as exc:
                log.warning(
                    "fallback bundle %s of %s unusable: %s", bundle_id, dataset_dir.name, exc
                )
                continue
            log.warning(
                "serving %s version %s from older bundle %s: %s is damaged",
                dataset_dir.name, loaded.version, bundle_id, exclude,
            )  # fmt: skip
            slot = self._loaded_slot(dataset_dir, loaded, None, pointer)
            return replace(slot, fallback_from=str(exclude))
        return None

    def _fail(self, slot: Slot, fingerprint: tuple, error: str) -> None:
        if slot.attempted == fingerprint:
            return
        self._slots[slot.dataset] = replace(slot, error=error, attempted=fingerprint)
        log.error("cannot load %s: %s", slot.dataset, error)
        self._on_failed(slot.dataset, error)
