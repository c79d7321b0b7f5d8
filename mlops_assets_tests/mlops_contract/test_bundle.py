import json

import pytest
from sklearn.linear_model import LinearRegression

from mlops_contract.bundle import (
    MODEL_FILE,
    BundleError,
    load_bundle,
    point_to,
    read_pointer,
    write_bundle,
)


@pytest.fixture
def model():
    return LinearRegression().fit([[0.0], [1.0], [2.0]], [1.0, 3.0, 5.0])


def test_written_bundle_loads_verified(tmp_path, model):
    write_bundle(tmp_path, "v1", model, {"name": "toy", "version": "1"})
    bundle = load_bundle(tmp_path)
    assert bundle.version == "1" and bundle.model.predict([[3.0]])[0] == pytest.approx(7.0)
    assert read_pointer(tmp_path)["bundle"] == "v1"


def test_inactive_bundle_does_not_move_the_pointer(tmp_path, model):
    write_bundle(tmp_path, "v1", model, {"name": "toy", "version": "1"})
    write_bundle(tmp_path, "v2", model, {"name": "toy", "version": "2"}, activate=False)
    assert load_bundle(tmp_path).version == "1"
    point_to(tmp_path, "v2")
    assert load_bundle(tmp_path).version == "2"


def test_no_champion_yet(tmp_path):
    assert read_pointer(tmp_path) is None
    with pytest.raises(BundleError, match="no champion bundle yet"):
        load_bundle(tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "delete", "manifest"])
def test_damaged_bundles_are_refused(tmp_path, model, damage):
    path = write_bundle(tmp_path, "v1", model, {"name": "toy", "version": "1"})
    if damage == "truncate":
        data = (path / MODEL_FILE).read_bytes()
        (path / MODEL_FILE).write_bytes(data[: len(data) // 2])
    elif damage == "delete":
        (path / MODEL_FILE).unlink()
    else:
        manifest = json.loads((path / "manifest.json").read_text())
        (path / "manifest.json").write_text(json.dumps({**manifest, "version": "9"}))
    with pytest.raises(BundleError):
        load_bundle(tmp_path)


def test_bundle_ids_are_never_reused(tmp_path, model):
    write_bundle(tmp_path, "v1", model, {"name": "toy", "version": "1"})
    with pytest.raises(BundleError, match="never reused"):
        write_bundle(tmp_path, "v1", model, {"name": "toy", "version": "1"})
