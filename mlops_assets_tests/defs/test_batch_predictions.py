import duckdb
import pytest
from dagster import AssetKey, materialize

from mlops_assets.build import build_dataset
from mlops_assets.components.dataset import dataset_definitions
from mlops_assets.defs.resources import resources_for
from mlops_contract import bundle

pytestmark = pytest.mark.slow

KEY = AssetKey(["iris", "batch_predictions"])


def score(settings, instance, spec):
    result = materialize(
        list(dataset_definitions(spec).assets),
        selection=[KEY],
        instance=instance,
        resources=resources_for(settings),
    )
    assert result.success
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        scored = con.execute("SELECT * FROM iris.batch_predictions ORDER BY row_number").df()
        rejected = con.execute("SELECT * FROM iris.batch_rejections ORDER BY row_number").df()
    return result, scored, rejected


def test_batch_files_are_scored_and_bad_rows_reported(settings, instance, builtin_specs):
    spec = builtin_specs["iris"]
    assert build_dataset(spec, settings, instance).success
    champion = bundle.load_bundle(settings.models_dir / "iris")

    result, scored, rejected = score(settings, instance, spec)  # no files: latest partition
    assert len(scored) == 150 and rejected.empty
    assert set(scored["source"]) == {"iris.csv"}

    folder = settings.data_dir / "score" / "iris"
    folder.mkdir(parents=True)
    (folder / "batch.csv").write_text(
        "sepal_length,sepal_width,petal_length,petal_width,id\n"
        "5.1,3.5,1.4,0.2,a\n6.7,3.0,5.2,2.3,b\nabc,3.0,5.2,2.3,c\n6.0,2.9,99,1.3,d\n"
    )
    result, scored, rejected = score(settings, instance, spec)
    assert scored["row_number"].tolist() == [1, 2]
    expected = champion.model.predict(
        scored[["sepal_length", "sepal_width", "petal_length", "petal_width"]]
    )
    assert scored["prediction"].tolist() == list(expected)
    assert set(scored["model_version"]) == {champion.version}
    assert set(scored["dagster_run_id"]) == {result.run_id}
    assert rejected["row_number"].tolist() == [3, 4]
    assert "sepal_length: must be a number" in rejected["errors"][0]
    assert "petal_length: must be <= 15.0" in rejected["errors"][1]
