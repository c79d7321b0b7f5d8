"""A promoted model as a servable bundle: manifest, drift reference, written and proven; and
its copy, with the latest drift evaluation, at the models location the prediction servers
follow (mlops_contract.location)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.lib import drift
from mlops_assets.lib.contract import input_contract
from mlops_assets.lib.spec import DatasetSpec
from mlops_contract import bundle
from mlops_contract.location import LocalLocation, Location, open_location


def manifest_for(
    spec: DatasetSpec, best: pd.Series, version: str, metrics: dict, run_id: str, x_train
) -> dict:
    # MLflow is imported where a run first uses it: the code location imports this module
    from mlops_assets.lib import registry

    return {
        "name": spec.name,
        "version": version,
        "task": spec.task,
        "target": spec.target,
        **input_contract(spec, x_train),  # input_schema
        "series": spec.series.compiled().to_manifest() if spec.series else None,
        "classes": None,
        "metrics": metrics,
        "selection_metric": spec.selection_metric,
        "family": best["family"],
        "trained_at": best["trained_at"],
        "promoted_at": datetime.now(UTC).isoformat(),
        "mlflow_run_id": best["run_id"],
        "model_uri": f"models:/{spec.name}/{version}",
        "logged_model_uri": best["model_uri"],
        "data_version": best["data_version"],
        "dagster_run_id": run_id,
        "python": registry.python_version(),
        "requirements": registry.pip_requirements(),
    }


def reference_profile(spec: DatasetSpec, model, x_train: pd.DataFrame) -> bytes:
    """What drift is measured against: the training inputs and the model's outputs on them."""
    frame = x_train.assign(prediction=model.predict(x_train))
    kinds = {c.name: c.kind for c in spec.drift_columns}
    kinds["prediction"] = "numeric" if spec.task == "regression" else "categorical"
    return json.dumps(drift.build_profile(frame, kinds)).encode()


def publish_bundle(
    dataset_dir: Path,
    model,
    manifest: dict,
    x_test,
    extra_files: dict[str, bytes],
    publish_to: str | None,
    pointer: str = bundle.POINTER_FILE,
) -> Path:
    """Write the bundle, prove it loads and predicts like the model in memory, then switch, and
    copy it to the location the prediction servers follow (`publish_to`, when it is elsewhere).
    `pointer` is the file that names it: current.json (the champion) or challenger.json.

    Raises `BundleError` when the written bundle does not predict like the model; the current
    bundle stays in force.
    """
    if hasattr(model, "classes_"):
        manifest["classes"] = [c.item() if hasattr(c, "item") else c for c in model.classes_]
    bundle_id = f"v{manifest['version']}-{manifest['dagster_run_id'][:8]}"
    path = bundle.write_bundle(
        dataset_dir, bundle_id, model, manifest, activate=False, extra_files=extra_files
    )
    reloaded = bundle.load_bundle(dataset_dir, bundle.pointer_for(dataset_dir, bundle_id))
    if not np.array_equal(reloaded.model.predict(x_test), model.predict(x_test)):
        raise bundle.BundleError(f"{path}: the bundle predicts differently from the model")
    bundle.point_to(dataset_dir, bundle_id, pointer)
    copy_to_location(publish_to, dataset_dir, bundle_id, pointer)
    return path


def republish_as_champion(dataset_dir: Path, challenger: bundle.Bundle, run_id: str) -> str:
    """A challenger promoted on live evidence, as a champion's bundle of its own: the same model
    and files, its manifest without the challenger mark (which keeps a bundle from ever being a
    fallback) and promoted now. Written, proven to hold the very files `challenger` was verified
    with, and not pointed at; returns its id."""
    written = ("format", "bundle_id", "files", *bundle.PUBLISHED_AS_CHALLENGER)
    manifest = {k: v for k, v in challenger.manifest.items() if k not in written}
    manifest["promoted_at"] = datetime.now(UTC).isoformat()
    files = {name: (challenger.path / name).read_bytes() for name in challenger.manifest["files"]}
    model = files.pop(bundle.MODEL_FILE)
    bundle_id = f"v{challenger.version}-{run_id[:8]}"
    bundle.write_bundle(dataset_dir, bundle_id, model, manifest, activate=False, extra_files=files)
    written = bundle.load_bundle(dataset_dir, bundle.pointer_for(dataset_dir, bundle_id))
    if written.manifest["files"] != challenger.manifest["files"]:
        raise bundle.BundleError(f"{challenger.path}: files changed while it was republished")
    return bundle_id


def _location(location: Location | str | os.PathLike) -> Location:
    return open_location(location) if isinstance(location, str | os.PathLike) else location


def _is_folder(location: Location, folder: Path) -> bool:
    return isinstance(location, LocalLocation) and location.root.resolve() == folder.resolve()


def copy_to_location(
    location: Location | str | os.PathLike | None,
    dataset_dir: Path,
    bundle_id: str,
    pointer: str = bundle.POINTER_FILE,
) -> None:
    """Copy a written, verified bundle to `location` and point `pointer` at it there: the
    bundle's files first, its manifest, the pointer last, so a reader never sees a pointer to a
    bundle that is not all there. None (MLOPS_MODELS_URL unset) does nothing."""
    if location is None:
        return
    location = _location(location)
    if _is_folder(location, dataset_dir.parent):
        return  # the bundle is already there
    bundle_dir = dataset_dir / "bundles" / bundle_id
    manifest = json.loads((bundle_dir / bundle.MANIFEST_FILE).read_bytes())
    remote = f"{dataset_dir.name}/bundles/{bundle_id}"
    for name in [*manifest.get("files", {}), bundle.MANIFEST_FILE]:
        location.write(f"{remote}/{name}", (bundle_dir / name).read_bytes())
    named = bundle.pointer_for(dataset_dir, bundle_id)
    location.write(f"{dataset_dir.name}/{pointer}", json.dumps(named).encode())


def withdraw_challenger(dataset_dir: Path, publish_to: str | None) -> None:
    """The servers stop shadowing: challenger.json names no bundle, here and at `publish_to`
    (a pointer is replaced, never deleted: every location can replace a file)."""
    if not (dataset_dir / bundle.CHALLENGER_FILE).exists():
        return
    bundle.point_to(dataset_dir, None, bundle.CHALLENGER_FILE)
    if publish_to is None or _is_folder(_location(publish_to), dataset_dir.parent):
        return
    target = f"{dataset_dir.name}/{bundle.CHALLENGER_FILE}"
    _location(publish_to).write(target, json.dumps(bundle.NO_BUNDLE).encode())


def publish_document(
    location: Location | str | os.PathLike, name: str, document: dict[str, Any]
) -> None:
    """Write a published document (mlops_contract.drift) as `<model>/<name>`, e.g. drift.json."""
    _location(location).write(f"{document['model']}/{name}", json.dumps(document).encode())
