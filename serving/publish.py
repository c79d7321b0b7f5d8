"""Publishing to a models location (serving.location): what the pipeline calls so that replicas
on other machines follow the champion and export the latest drift evaluation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from serving.bundle import DRIFT_FILE, MANIFEST_FILE, POINTER_FILE, pointer_for
from serving.location import LocalLocation, Location, open_location

DRIFT_FORMAT = 1


def _location(location: Location | str | os.PathLike) -> Location:
    return open_location(location) if isinstance(location, str | os.PathLike) else location


def _is_folder(location: Location, folder: Path) -> bool:
    return isinstance(location, LocalLocation) and location.root.resolve() == folder.resolve()


def publish_bundle(
    location: Location | str | os.PathLike | None, dataset_dir: Path, bundle_id: str
) -> None:
    """Copy a written, verified bundle to `location` and make it current there: the bundle's
    files first, its manifest, `current.json` last, so a reader never sees a pointer to a
    bundle that is not all there. None (MLOPS_MODELS_URL unset) does nothing."""
    if location is None:
        return
    location = _location(location)
    if _is_folder(location, dataset_dir.parent):
        return  # the bundle is already there
    bundle_dir = dataset_dir / "bundles" / bundle_id
    manifest = json.loads((bundle_dir / MANIFEST_FILE).read_bytes())
    remote = f"{dataset_dir.name}/bundles/{bundle_id}"
    for name in [*manifest.get("files", {}), MANIFEST_FILE]:
        location.write(f"{remote}/{name}", (bundle_dir / name).read_bytes())
    pointer = pointer_for(dataset_dir, bundle_id)
    location.write(f"{dataset_dir.name}/{POINTER_FILE}", json.dumps(pointer).encode())


def drift_document(
    model: str,
    version: str,
    evaluated_at: str,
    dataset_drift: bool,
    features: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """`<dataset>/drift.json`: features maps a name to {"p_value", "psi", "drifted"}."""
    return {
        "format": DRIFT_FORMAT,
        "model": model,
        "version": str(version),
        "evaluated_at": evaluated_at,
        "dataset_drift": bool(dataset_drift),
        "features": {
            name: {
                "p_value": float(values["p_value"]),
                "psi": float(values["psi"]),
                "drifted": bool(values["drifted"]),
            }
            for name, values in features.items()
        },
    }


def publish_drift(location: Location | str | os.PathLike, document: dict[str, Any]) -> None:
    """Write the latest drift evaluation beside the model store as `<model>/drift.json`."""
    _location(location).write(f"{document['model']}/{DRIFT_FILE}", json.dumps(document).encode())
