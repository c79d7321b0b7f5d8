"""Re-checking bundles on disk after they were loaded: files can rot or vanish under a model
that is still being served, and a damaged current bundle must not stop a restart from serving.

Cheap per reload tick: one stat per bundle file; hashing only when a stat changed, or when the
slow full-verification interval is due.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

from mlops_contract import bundle
from mlops_contract.bundle import MANIFEST_FILE, sha256_of

log = logging.getLogger("serving.integrity")


def file_stats(bundle_dir: Path, manifest: dict) -> tuple:
    """(name, size, mtime) of the manifest and every file it lists; None for a missing file."""
    stats = []
    for name in (MANIFEST_FILE, *sorted(manifest.get("files", {}))):
        try:
            stat = (bundle_dir / name).stat()
            stats.append((name, stat.st_size, stat.st_mtime_ns))
        except OSError:
            stats.append((name, None))
    return tuple(stats)


def bundle_fingerprint(dataset_dir: Path, pointer: dict) -> tuple:
    """The pointer and the name, size and mtime of every file in the bundle folder it names:
    a bundle that failed to load is tried again only once this changes."""
    bundle_dir = dataset_dir / "bundles" / str(pointer.get("bundle"))
    try:
        files = sorted(
            (entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
            for entry in bundle_dir.iterdir()
        )
    except OSError:
        files = []
    return (pointer.get("bundle"), pointer.get("manifest_sha256"), tuple(files))


def damage_of(bundle_dir: Path, manifest: dict, manifest_sha: str | None) -> str | None:
    """Why the bundle on disk no longer matches what was loaded from it, or None when intact."""
    if not bundle_dir.is_dir():
        return f"{bundle_dir}: bundle folder is gone"
    expected = {MANIFEST_FILE: manifest_sha, **manifest.get("files", {})}
    for name, sha in expected.items():
        path = bundle_dir / name
        try:
            actual = sha256_of(path)
        except FileNotFoundError:
            return f"{path}: missing"
        except OSError as exc:
            return f"{path}: {exc.strerror}"
        if sha is not None and actual != sha:
            return f"{path}: sha256 mismatch (damaged on disk)"
    return None


def remove_stale_staging(models_dir: Path) -> list[Path]:
    """Apply the bundle writers' own rule (mlops_contract.bundle) to every data set's bundles."""
    removed = []
    for bundles in models_dir.glob("*/bundles"):
        for staging in bundle.remove_stale_staging(bundles):
            log.warning("removed stale staging folder %s", staging)
            removed.append(staging)
    return removed


def _published_as_challenger(bundle_dir: Path) -> bool:
    try:
        manifest = json.loads(bundle.read_regular(bundle_dir / MANIFEST_FILE))
    except (OSError, ValueError):
        return False  # the fallback's own verification reports it
    published = bundle.PUBLISHED_AS_CHALLENGER.items()
    return isinstance(manifest, dict) and published <= manifest.items()


def older_bundles(dataset_dir: Path, exclude: str) -> Iterator[str]:
    """Bundle ids of a data set other than `exclude`, newest first; staging folders and
    challenger bundles (never promoted on the holdout) never."""

    def written_at(bundle_dir: Path) -> int:
        try:
            return (bundle_dir / MANIFEST_FILE).stat().st_mtime_ns
        except OSError:
            return 0

    try:
        candidates = [
            entry
            for entry in (dataset_dir / "bundles").iterdir()
            if entry.is_dir() and not entry.name.startswith(".") and entry.name != exclude
        ]
    except OSError:
        return
    for bundle_dir in sorted(candidates, key=written_at, reverse=True):
        if not _published_as_challenger(bundle_dir):
            yield bundle_dir.name
