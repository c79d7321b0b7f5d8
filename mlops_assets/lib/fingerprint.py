"""What a training run learns from, as one hash: equal fingerprints train equal models, so a
run whose fingerprint is already registered has nothing new to register."""

import hashlib
import json
from importlib import metadata
from pathlib import Path

from mlops_assets.lib.spec import DatasetSpec

FINGERPRINT_TAG = "training_fingerprint"
# spec fields that do not change what is trained (documentation, where it came from, and the
# monitoring-only gates)
NOT_TRAINING = {"description", "source", "sha256", "license"}
MONITORING_GATES = {"drift_alpha", "max_drift_share", "drift_min_rows", "promote_on_live_evidence"}


TRAINING_CODE = ("features.py", "training.py", "search.py", "evaluation.py")  # beside this module


def code_version() -> str:
    """This package's and scikit-learn's versions and the training code's own bytes, so an
    edit that changes what is trained changes the fingerprint before any release."""
    here = Path(__file__).parent
    parts = [_version("mlops-assets"), _version("scikit-learn")]
    parts += [hashlib.sha256((here / name).read_bytes()).hexdigest() for name in TRAINING_CODE]
    return ":".join(parts)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def settings_fingerprint(spec: DatasetSpec) -> str:
    """The spec's training settings and the code version, without the data."""
    settings = spec.model_dump(mode="json", exclude=NOT_TRAINING)
    settings["gates"] = {k: v for k, v in settings["gates"].items() if k not in MONITORING_GATES}
    settings["code_version"] = code_version()
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def training_fingerprint(spec: DatasetSpec, data_version: str) -> str:
    """The feature table's content hash combined with the training settings."""
    text = f"{data_version}:{settings_fingerprint(spec)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]
