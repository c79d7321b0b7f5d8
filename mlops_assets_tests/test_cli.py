from collections import Counter
from pathlib import Path

import pytest

from mlops_assets.cli import main
from mlops_assets.settings import builtin_spec_path


@pytest.fixture
def cli_env(settings, tmp_path, monkeypatch):
    """Run the CLI in a scratch folder with its own Dagster home."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    return settings


def test_datasets_lists_specs_sources_and_champions(cli_env, capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "iris" in out and "bundled with scikit-learn (offline)" in out
    assert "abalone" in out and "MLOPS_SOURCE_ABALONE" in out
    assert "none yet" in out


def test_unknown_data_set_is_a_usage_error(cli_env, capsys):
    assert main(["build", "nosuch"]) == 2
    assert "unknown data set(s): ['nosuch']" in capsys.readouterr().err


def test_unreachable_named_source_fails_with_advice(cli_env, capsys, monkeypatch):
    monkeypatch.setenv("MLOPS_SOURCE_ABALONE", "http://127.0.0.1:9/abalone.data")
    assert main(["build", "abalone"]) == 1
    out = capsys.readouterr()
    assert "set MLOPS_SOURCE_ABALONE to a local copy" in out.err
    assert "skipped abalone" in out.out


@pytest.fixture
def iris_failing_its_gate(tmp_path, monkeypatch):
    """iris with min_rows above its 150 rows: the run stops at the validated gate, quickly."""
    specs = tmp_path / "specs"
    specs.mkdir()
    text = builtin_spec_path("iris").read_text().replace("min_rows: 100", "min_rows: 1000")
    (specs / "iris.yaml").write_text(text)
    monkeypatch.setenv("MLOPS_DATASETS_DIR", str(specs))


@pytest.mark.slow
def test_build_exits_non_zero_naming_the_failed_gate(cli_env, iris_failing_its_gate, capsys):
    assert main(["build", "iris"]) == 1
    out = capsys.readouterr().out
    assert "iris: FAILED" in out
    assert "gate iris/validated:enough_rows failed (validated_rows=150, min_rows=1000)" in out


def test_default_dagster_home_is_recorded_for_the_plain_dagster_cli(
    settings, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    assert main(["datasets"]) == 0
    home = tmp_path / ".dagster_home"
    assert (tmp_path / ".env").read_text() == f"DAGSTER_HOME={home}\n"
    assert (home / "dagster.yaml").resolve() == (tmp_path / "dagster.yaml").resolve()


def test_an_explicit_dagster_home_is_left_alone(cli_env, tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    assert main(["datasets"]) == 0
    assert not (tmp_path / ".env").exists()


@pytest.mark.slow
def test_every_build_run_is_tagged_with_its_data_set(cli_env, iris_failing_its_gate):
    from dagster import DagsterInstance, RunsFilter

    main(["build", "iris"])
    with DagsterInstance.get() as instance:
        [run] = instance.get_runs(RunsFilter(tags={"mlops/dataset": "iris"}))
    assert run.tags["mlops/trigger"] == "mlops build"


def test_a_dagster_home_without_the_project_settings_is_warned_about(cli_env, tmp_path, capsys):
    assert main(["datasets"]) == 0
    err = capsys.readouterr().err
    assert "dagster.yaml is missing" in err and "duckdb" in err and "telemetry" in err
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    assert main(["datasets"]) == 0
    err = capsys.readouterr().err
    assert "no concurrency pool limit" in err and "telemetry" not in err


def test_the_project_dagster_yaml_has_every_setting_checked(cli_env, tmp_path, capsys):
    project_config = Path(__file__).resolve().parents[1] / "dagster.yaml"
    (tmp_path / "dagster_home" / "dagster.yaml").symlink_to(project_config)
    assert main(["datasets"]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("command", [["build", "iris"], ["datasets"]])
def test_an_invalid_spec_is_one_line_naming_file_field_and_types(
    cli_env, tmp_path, monkeypatch, capsys, command
):
    specs = tmp_path / "specs"
    specs.mkdir()
    text = builtin_spec_path("iris").read_text().replace("type: category", "type: string")
    (specs / "iris.yaml").write_text(text)
    monkeypatch.setenv("MLOPS_DATASETS_DIR", str(specs))
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"error: {specs / 'iris.yaml'}: field `columns.4.type`: Input should be 'float'," in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 2  # the home warning


@pytest.mark.slow
def test_a_missing_column_names_the_file_columns_without_a_stack_trace(
    cli_env, tmp_path, monkeypatch, capsys
):
    source = tmp_path / "iris.csv"
    source.write_text("sepal_length,sepal_width,petal_length,petal_width_cm,species\n1,2,3,4,x\n")
    monkeypatch.setenv("MLOPS_SOURCE_IRIS", str(source))
    assert main(["build", "iris"]) == 1
    out = capsys.readouterr()
    expected = (
        "missing column(s) required by the spec: ['petal_width']; the file has: "
        "['sepal_length', 'sepal_width', 'petal_length', 'petal_width_cm', 'species']"
    )
    assert expected in out.out and expected in out.err
    assert "Stack Trace" not in out.err and 'File "' not in out.err
    assert "(the stack trace: the run in the Dagster UI)" in out.err


def test_traffic_draws_new_rows_each_run_and_prints_the_seed_that_repeats_them(
    cli_env, builtin_specs, monkeypatch, capsys
):
    import duckdb

    from mlops_assets.lib import traffic
    from mlops_assets.lib.ingest import load_raw
    from mlops_assets.lib.sources import fetch_source
    from mlops_assets.lib.validation import validate_partition

    iris = builtin_specs["iris"]
    with duckdb.connect(str(cli_env.warehouse_path)) as con:
        load_raw(con, iris, fetch_source(iris, cli_env.sources_dir), "iris.csv")
        validate_partition(con, iris, "iris.csv")
    sent = []

    def deliver(url, name, records, batch, labels):
        sent.append(records)
        return traffic.Delivery(Counter({200: 1}), Counter({200: len(records)}))

    monkeypatch.setattr(traffic, "deliver", deliver)
    outputs = []
    for _ in range(2):
        main(["traffic", "iris", "--rows", "20"])
        outputs.append(capsys.readouterr().out)
    assert sent[0] != sent[1]
    seed = outputs[0].split()[1]
    assert f"seed {seed} (--seed {seed} sends the same rows again)" in outputs[0]
    main(["traffic", "iris", "--rows", "20", "--seed", seed])
    assert sent[2] == sent[0] and "seed" not in capsys.readouterr().out
