"""A run whose training data, spec and code are unchanged registers no new version."""

import pytest
from mlflow.tracking import MlflowClient

from mlops_assets.build import build_dataset
from mlops_assets.lib.fingerprint import FINGERPRINT_TAG

pytestmark = pytest.mark.slow


def champion_metadata(instance, key: str) -> dict:
    from dagster import AssetKey

    event = instance.get_latest_materialization_event(AssetKey(["iris", key]))
    return event.asset_materialization.metadata


def test_a_second_build_on_the_same_data_registers_nothing(settings, instance, builtin_specs):
    spec = builtin_specs["iris"]
    assert build_dataset(spec, settings, instance).success
    client = MlflowClient()
    [first] = client.search_model_versions("name = 'iris'")
    assert first.tags[FINGERPRINT_TAG]

    assert build_dataset(spec, settings, instance).success

    assert [v.version for v in client.search_model_versions("name = 'iris'")] == [first.version]
    for key in ("candidates", "champion_model"):
        metadata = champion_metadata(instance, key)
        assert metadata["unchanged_inputs"].value is True
        assert metadata["note"].value.startswith("unchanged inputs, no new version: v1")
        assert metadata["training_fingerprint"].value == first.tags[FINGERPRINT_TAG]


def test_a_new_warehouse_beside_the_same_registry_registers_nothing(settings, instance,
                                                                   builtin_specs):  # fmt: skip
    """E.g. the warehouse moved to a DuckLake: `candidates` finds the registry's version of the
    same inputs and trains nothing, and `champion_model` agrees instead of failing."""
    spec = builtin_specs["iris"]
    assert build_dataset(spec, settings, instance).success
    settings.warehouse_path.unlink()

    assert build_dataset(spec, settings, instance).success

    assert [str(v.version) for v in MlflowClient().search_model_versions("name = 'iris'")] == ["1"]
    assert champion_metadata(instance, "champion_model")["unchanged_inputs"].value is True


def test_a_changed_training_setting_trains_again(settings, instance, builtin_specs):
    spec = builtin_specs["iris"]
    assert build_dataset(spec, settings, instance).success
    changed = spec.model_copy(update={"cv_folds": spec.cv_folds + 1})
    assert build_dataset(changed, settings, instance).success
    versions = MlflowClient().search_model_versions("name = 'iris'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]
    assert len({v.tags[FINGERPRINT_TAG] for v in versions}) == 2
