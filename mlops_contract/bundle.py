"""The servable bundle: a champion model with everything needed to serve it, and nothing else.

Layout under `<models_dir>/<dataset>/`:

    bundles/<bundle_id>/model.joblib     the fitted scikit-learn Pipeline (takes spec column names)
    bundles/<bundle_id>/manifest.json    name, version, task, input schema, classes, metrics, ...
    bundles/<bundle_id>/reference.json   training-data profile that drift is measured against
    bundles/<bundle_id>/card.md, card.json  the model card (Markdown; JSON with the lineage)
    current.json                         {"bundle": <bundle_id>, "manifest_sha256": ...}
    challenger.json                      the same for the challenger the server shadows, or
                                         {"bundle": null} once there is none

A bundle directory is complete before it gets its final name, and `current.json` is replaced
atomically, so a reader sees the old champion or the new one, never a partial bundle. Readers
verify the manifest against the pointer and every file against the manifest.

The pipeline writes bundles through this module and the server reads them with it. Standard
library and joblib only.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

FORMAT_VERSION = 1
# the Dagster asset that publishes a data set's bundles (`<dataset>/champion_model`); the pipeline
# names its asset with this, the server names it in "nothing to serve yet" answers
PUBLISHER_ASSET = "champion_model"
MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
POINTER_FILE = "current.json"
CHALLENGER_FILE = "challenger.json"  # the registry's `challenger`, scored in the shadow
NO_BUNDLE = {"bundle": None}  # what a pointer file holds once it names no bundle any more
# a challenger bundle's manifest says so: it lost on the holdout, so it is never a fallback
PUBLISHED_AS_CHALLENGER = {"published_as": "challenger"}
REFERENCE_FILE = "reference.json"  # the drift reference profile of the training data
CARD_MARKDOWN_FILE = "card.md"  # the model card, for people
CARD_JSON_FILE = "card.json"  # the same card as data, with the lineage
HISTORY_FILE = "history.json"  # a series model's last observations per entity at promotion
# `.<bundle_id>.pid<writer pid>@<writer host>.<random>`: a bundle being written (dot folders are
# never served). The host is kept because a folder shared by containers or machines holds
# writers whose pids mean nothing here.
STAGING_NAME = re.compile(r"^\..+\.pid(\d+)@([A-Za-z0-9-]*)\.[^.]+$")
STALE_STAGING_SECONDS = 600  # a staging folder this old is abandoned, whoever wrote it
DRIFT_FILE = "drift.json"  # `<dataset>/drift.json`: the latest drift evaluation (serving.publish)
LIVE_FILE = "live.json"  # `<dataset>/live.json`: the champion's latest live performance


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading, refusing anything but a regular file: a FIFO or a device in a
    bundle's place would block or never end every reader (and so every reload)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return os.fdopen(descriptor, "rb")


def read_regular(path: Path) -> bytes:
    with open_regular(path) as handle:
        return handle.read()


def sha256_of(path: Path) -> str:
    """A file's sha256, read in blocks so large files need little memory."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class BundleError(Exception):
    """A bundle that must not be served: missing, partial, corrupt or incompatible."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict[str, Any]
    model: Any

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> str:
        return str(self.manifest["version"])


def _fsync_write(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_bundle(
    dataset_dir: Path,
    bundle_id: str,
    model: Any,
    manifest: dict[str, Any],
    activate: bool = True,
    extra_files: dict[str, bytes] | None = None,
) -> Path:
    """Write a complete bundle and (with `activate`) point `current.json` at it.

    Returns the bundle directory. Without `activate` the caller can verify the bundle first and
    then call `point_to`. `extra_files` (e.g. the drift reference) are checksummed like the model.
    `model` is the fitted model, or the bytes of a model file written before (kept unchanged).
    """
    import joblib

    bundles = dataset_dir / "bundles"
    bundles.mkdir(parents=True, exist_ok=True)
    final = bundles / bundle_id
    if final.exists():
        raise BundleError(f"{final} already exists; bundle ids are never reused")
    remove_stale_staging(bundles)
    staging = Path(tempfile.mkdtemp(prefix=f".{bundle_id}.{writer_tag()}.", dir=bundles))
    try:
        if isinstance(model, bytes):
            _fsync_write(staging / MODEL_FILE, model)
        else:
            joblib.dump(model, staging / MODEL_FILE)
        for name, content in (extra_files or {}).items():
            _fsync_write(staging / name, content)
        files = [MODEL_FILE, *(extra_files or {})]
        full = {
            **manifest,
            "format": FORMAT_VERSION,
            "bundle_id": bundle_id,
            "files": {name: sha256_of(staging / name) for name in files},
        }
        _fsync_write(staging / MANIFEST_FILE, json.dumps(full, indent=2, default=str).encode())
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if activate:
        point_to(dataset_dir, bundle_id)
    return final


def writer_tag() -> str:
    """`pid<pid>@<host>` of this process, as staging names record it."""
    return f"pid{os.getpid()}@{_host()}"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())


def remove_stale_staging(bundles: Path, now: float | None = None) -> list[Path]:
    """Remove staging folders a crashed writer left behind; returns what was removed.

    The one rule for bundle writers and servers alike: a dot folder under `bundles/` is stale
    when it is older than STALE_STAGING_SECONDS (the pid may have been reused) or when its
    name records a writer on this host whose process is gone. A write in progress is left alone.
    """
    now = time.time() if now is None else now
    removed = []
    for folder in bundles.glob(".*"):
        try:
            if not folder.is_dir():
                continue
            age = now - folder.stat().st_mtime
        except OSError:  # removed meanwhile
            continue
        if age > STALE_STAGING_SECONDS or _writer_is_gone(folder.name):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _writer_is_gone(name: str) -> bool:
    match = STAGING_NAME.match(name)
    if match is None or match.group(2) != _host():
        return False  # not ours to judge: no writer recorded, or another host's
    return not process_alive(int(match.group(1)))


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (perhaps as another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def pointer_for(dataset_dir: Path, bundle_id: str) -> dict[str, str]:
    """The pointer that names a written bundle (what `current.json` holds)."""
    manifest_sha = sha256_of(dataset_dir / "bundles" / bundle_id / MANIFEST_FILE)
    return {"bundle": bundle_id, "manifest_sha256": manifest_sha}


def point_to(dataset_dir: Path, bundle_id: str | None, name: str = POINTER_FILE) -> None:
    """Atomically make `bundle_id` the bundle the pointer file `name` names (None: no bundle)."""
    pointer = NO_BUNDLE if bundle_id is None else pointer_for(dataset_dir, bundle_id)
    temporary = dataset_dir / f".{name}.{os.getpid()}.tmp"
    _fsync_write(temporary, json.dumps(pointer).encode())
    os.replace(temporary, dataset_dir / name)


def read_pointer(dataset_dir: Path, name: str = POINTER_FILE) -> dict[str, str] | None:
    """The pointer `name` of a data set (current.json: its champion), or None when it names
    no bundle."""
    try:
        pointer = json.loads(read_regular(dataset_dir / name))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BundleError(f"{dataset_dir / name}: unreadable pointer: {exc}") from None
    if pointer == NO_BUNDLE:
        return None
    if not isinstance(pointer, dict) or not {"bundle", "manifest_sha256"} <= pointer.keys():
        raise BundleError(f"{dataset_dir / name}: pointer lacks bundle or manifest_sha256")
    return pointer


def read_manifest(dataset_dir: Path, pointer: dict[str, str]) -> tuple[Path, dict[str, Any]]:
    """The verified manifest of the bundle a pointer names."""
    path = dataset_dir / "bundles" / pointer["bundle"]
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(f"{path}: missing {MANIFEST_FILE}")
    if sha256_of(manifest_path) != pointer["manifest_sha256"]:
        raise BundleError(f"{manifest_path}: sha256 does not match {POINTER_FILE}")
    manifest = json.loads(read_regular(manifest_path))
    if manifest.get("format") != FORMAT_VERSION:
        raise BundleError(f"{path}: bundle format {manifest.get('format')} is not supported")
    return path, manifest


def read_current_file(dataset_dir: Path, name: str) -> tuple[dict[str, Any], bytes]:
    """The current bundle's manifest and one of its files, verified, without loading the model."""
    pointer = read_pointer(dataset_dir)
    if pointer is None:
        raise BundleError(f"{dataset_dir}: no champion bundle yet")
    path, manifest = read_manifest(dataset_dir, pointer)
    content = (path / name).read_bytes() if (path / name).is_file() else None
    expected = manifest.get("files", {}).get(name)
    if content is None or expected is None:
        raise BundleError(f"{path}: the bundle has no {name}")
    if hashlib.sha256(content).hexdigest() != expected:
        raise BundleError(f"{path / name}: sha256 mismatch (corrupt or partial)")
    return manifest, content


def verify_files(path: Path, manifest: dict[str, Any]) -> None:
    """Raise BundleError unless every file the manifest lists is in `path` with its sha256."""
    for name, expected in manifest.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"{file}: missing")
        if sha256_of(file) != expected:
            raise BundleError(f"{file}: sha256 mismatch (corrupt or partial)")


def is_intact(dataset_dir: Path, pointer: dict[str, str]) -> bool:
    """Whether the bundle a pointer names verifies completely (without loading the model)."""
    try:
        path, manifest = read_manifest(dataset_dir, pointer)
        verify_files(path, manifest)
    except (BundleError, OSError, ValueError):
        return False
    return True


def load_bundle(dataset_dir: Path, pointer: dict[str, str] | None = None) -> Bundle:
    """Load and verify the current bundle (or the one `pointer` names)."""
    import joblib

    pointer = pointer or read_pointer(dataset_dir)
    if pointer is None:
        raise BundleError(f"{dataset_dir}: no champion bundle yet")
    path, manifest = read_manifest(dataset_dir, pointer)
    verify_files(path, manifest)
    try:
        model = joblib.load(path / MODEL_FILE)
    except Exception as exc:  # unpickling can fail in many ways; all mean "not servable"
        raise BundleError(f"{path / MODEL_FILE}: cannot load model: {exc}") from exc
    return Bundle(path=path, manifest=manifest, model=model)
