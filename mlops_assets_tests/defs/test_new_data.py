"""New files as partitions: bad ones stop at the gate, good ones flow on without clicks."""

import pytest
from dagster import AssetKey, evaluate_automation_conditions, materialize

from mlops_assets.build import build_dataset, failures_of
from mlops_assets.components.dataset import dataset_assets
from mlops_assets.definitions import defs as load_code_location
from mlops_assets.defs.ingestion.assets import files_partitions
from mlops_assets.defs.resources import resources_for
from mlops_contract import bundle

pytestmark = pytest.mark.slow

HEADER = "sepal_length,sepal_width,petal_length,petal_width,species"
GOOD = ["5.15,3.5,1.4,0.2,setosa", "6.25,2.9,4.3,1.3,versicolor", "7.75,3.0,6.1,2.3,virginica"]


def land(settings, instance, spec, name, lines):
    folder = settings.landing_dir / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join(lines) + "\n")
    instance.add_dynamic_partitions(files_partitions(spec).name, [name])


def run_partition(settings, instance, spec, partition, selection=None):
    return materialize(
        dataset_assets(spec),
        instance=instance,
        resources=resources_for(settings),
        partition_key=partition,
        selection=selection,
        raise_on_error=False,
    )


@pytest.fixture
def built_iris(settings, instance, builtin_specs):
    spec = builtin_specs["iris"]
    assert build_dataset(spec, settings, instance).success
    return spec


def test_bad_files_are_stopped_and_the_champion_is_untouched(settings, instance, built_iris):
    spec = built_iris
    pointer = bundle.read_pointer(settings.models_dir / "iris")

    land(settings, instance, spec, "mostly_bad.csv", [HEADER, *GOOD, "5.0,3.0,1.0,0.2,tulip"] * 1)
    result = run_partition(settings, instance, spec, "mostly_bad.csv")
    assert not result.success
    failures = " ".join(failures_of(result))
    assert "iris/validated:quarantine_share_within_threshold failed" in failures
    assert not result.asset_materializations_for_node("iris__features")

    land(settings, instance, spec, "header_only.csv", [HEADER])
    result = run_partition(settings, instance, spec, "header_only.csv")
    assert "header_only.csv: the header has no data rows" in " ".join(failures_of(result))

    land(settings, instance, spec, "no_species.csv", [HEADER.rsplit(",", 1)[0], "5.1,3.5,1.4,0.2"])
    result = run_partition(settings, instance, spec, "no_species.csv")
    assert "missing column(s) required by the spec: ['species']" in " ".join(failures_of(result))

    assert bundle.read_pointer(settings.models_dir / "iris") == pointer


def test_a_new_partition_flows_downstream_by_declarative_automation(settings, instance, built_iris):
    spec = built_iris
    defs = load_code_location()
    land(settings, instance, spec, "new.csv", [HEADER, *GOOD])
    ingested = [AssetKey(["iris", "raw"]), AssetKey(["iris", "validated"])]
    # a first evaluation records the current state; only changes after it are "new"
    evaluation = evaluate_automation_conditions(defs=defs, instance=instance)
    # what the landing sensor requests: the file's raw partition and its validation, one run
    assert run_partition(settings, instance, spec, "new.csv", selection=ingested).success
    evaluation = evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=evaluation.cursor
    )
    assert evaluation.get_num_requested(AssetKey(["iris", "features"])) == 1
    assert evaluation.get_num_requested(AssetKey(["iris", "validated"])) == 0
    evaluation = evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=evaluation.cursor
    )
    assert evaluation.total_requested == 0  # requested once, not on every tick
