"""A local copy of a remote model location, for replicas that cannot share the models folder.

Every reload tick `sync()` reads each data set's `current.json` (and `challenger.json`) from the
location; a bundle one names that is not in the cache yet is downloaded into a staging folder,
moved into place, and only then is the cache's pointer replaced. The ModelStore (and the
shadow's Challengers) read the cache as they read a local models folder, so a downloaded bundle
is verified (mlops_contract.bundle) before it is served and a broken one never replaces the
model being served (its error shows in /ready and /metrics).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from mlops_contract.bundle import (
    CHALLENGER_FILE,
    DRIFT_FILE,
    LIVE_FILE,
    MANIFEST_FILE,
    NO_BUNDLE,
    POINTER_FILE,
    is_intact,
)
from mlops_contract.location import Location, LocationError

log = logging.getLogger("serving.mirror")
RETRY_INTERVAL = 30.0  # seconds before a bundle that downloaded broken is downloaded again


def _replace_file(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class RemoteMirror:
    def __init__(self, location: Location, cache_dir: Path, retry_interval: float = RETRY_INTERVAL):
        self.location = location
        self.cache_dir = Path(cache_dir)
        self.retry_interval = retry_interval
        self.error: str | None = None  # why the last sync could not reach the location
        # per (data set, pointer file): (pointer bytes, intact, time.monotonic()) of the last
        # download of the bundle it names
        self._downloads: dict[tuple[str, str], tuple[bytes, bool, float]] = {}

    def sync(self) -> None:
        """Bring the cache up to date; an unreachable location leaves it as it is."""
        try:
            for dataset in self.location.list_dirs():
                if not dataset.startswith("."):
                    self._sync_one(dataset)
        except LocationError as exc:
            if str(exc) != self.error:
                log.error("models location %s unreachable: %s", self.location.url, exc)
            self.error = str(exc)
            return
        if self.error:
            log.warning("models location %s reachable again", self.location.url)
        self.error = None

    def _sync_one(self, dataset: str) -> None:
        dataset_dir = self.cache_dir / dataset
        for name in (DRIFT_FILE, LIVE_FILE):
            self._copy_if_changed(f"{dataset}/{name}", dataset_dir / name)
        for name in (POINTER_FILE, CHALLENGER_FILE):
            self._sync_pointer(dataset, name)

    def _sync_pointer(self, dataset: str, name: str) -> None:
        """The pointer file `name` (the champion's or the challenger's), after its bundle."""
        dataset_dir = self.cache_dir / dataset
        raw = self.location.read(f"{dataset}/{name}")
        if raw is None:
            return
        key = (dataset, name)
        cached_pointer = dataset_dir / name
        unchanged = cached_pointer.is_file() and cached_pointer.read_bytes() == raw
        if unchanged and not self._retry_due(key, raw):
            return
        try:
            pointer = json.loads(raw)
            bundle_id = None if pointer == NO_BUNDLE else str(pointer["bundle"])
            if bundle_id is not None and (bundle_id.startswith(".") or "/" in bundle_id):
                raise ValueError(f"bad bundle id {bundle_id!r}")
        except (ValueError, TypeError, KeyError):
            bundle_id = None  # the store reports the unreadable pointer; the model stays
        if bundle_id is not None and not self._bundle_cached(key, raw, pointer):
            self._download(key, bundle_id, raw, pointer)
        dataset_dir.mkdir(parents=True, exist_ok=True)
        _replace_file(cached_pointer, raw)

    def _retry_due(self, key: tuple[str, str], raw: bytes) -> bool:
        last = self._downloads.get(key)
        if last is None or last[0] != raw or last[1]:
            return False
        return time.monotonic() - last[2] >= self.retry_interval

    def _bundle_cached(self, key: tuple[str, str], raw: bytes, pointer: dict) -> bool:
        last = self._downloads.get(key)
        if last is not None and last[0] == raw:
            intact, at = last[1], last[2]
            return intact or time.monotonic() - at < self.retry_interval
        return is_intact(self.cache_dir / key[0], pointer)

    def _download(self, key: tuple[str, str], bundle_id: str, raw: bytes, pointer: dict) -> None:
        dataset = key[0]
        bundles = self.cache_dir / dataset / "bundles"
        bundles.mkdir(parents=True, exist_ok=True)
        remote = f"{dataset}/bundles/{bundle_id}"
        staging = Path(tempfile.mkdtemp(prefix=f".{bundle_id}-", dir=bundles))
        try:
            manifest_bytes = self.location.read(f"{remote}/{MANIFEST_FILE}")
            if manifest_bytes is not None:
                (staging / MANIFEST_FILE).write_bytes(manifest_bytes)
                for name in _listed_files(manifest_bytes):
                    content = self.location.read(f"{remote}/{name}")
                    if content is not None:
                        (staging / name).write_bytes(content)
            self._move_into_place(staging, bundles / bundle_id, dataset, pointer)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        intact = is_intact(self.cache_dir / dataset, pointer)
        self._downloads[key] = (raw, intact, time.monotonic())
        log.info("downloaded bundle %s of %s (intact: %s)", bundle_id, dataset, intact)

    def _move_into_place(self, staging: Path, final: Path, dataset: str, pointer: dict) -> None:
        """Workers of one server share the cache: a bundle another one already put in place
        intact is kept (it may be loading from it); an earlier broken download is replaced."""
        if final.exists():
            if is_intact(self.cache_dir / dataset, pointer):
                shutil.rmtree(staging, ignore_errors=True)
                return
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.replace(staging, final)
        except OSError:  # another worker moved its copy in first
            shutil.rmtree(staging, ignore_errors=True)

    def _copy_if_changed(self, remote: str, local: Path) -> None:
        content = self.location.read(remote)
        if content is None or (local.is_file() and local.read_bytes() == content):
            return
        local.parent.mkdir(parents=True, exist_ok=True)
        _replace_file(local, content)


def _listed_files(manifest_bytes: bytes) -> list[str]:
    """The file names a manifest lists; none when it is unreadable (the store reports that)."""
    try:
        files = json.loads(manifest_bytes).get("files", {})
    except (ValueError, AttributeError):
        return []
    return [name for name in files if "/" not in name and not name.startswith(".")]
