"""Two builds started at the same moment in a fresh home both succeed."""

import pytest
from dagster import asset, materialize

from mlops_assets.build import failures_of
from mlops_assets_tests.reliability.build_process import BuildHome


@pytest.mark.slow
def test_two_builds_started_together_in_a_fresh_home_both_succeed(tmp_path):
    home = BuildHome.create(tmp_path / "home")  # no MLflow store, no Dagster storage yet
    builds = [home.start("iris", log=f"build{index}") for index in range(2)]
    codes = [build.wait(timeout=480) for build in builds]
    outputs = [home.output(f"build{index}") for index in range(2)]
    assert codes == [0, 0], "\n\n".join(outputs)
    for out in outputs:
        assert "iris: built" in out
        assert "duplicate column name" not in out
        assert "nanobind" not in out  # a clean exit: no `leaked instance` lines from DuckDB


def test_a_failure_without_a_message_is_named_by_its_error_class(instance):
    @asset
    def silent():
        raise RuntimeError()

    result = materialize([silent], instance=instance, raise_on_error=False)
    assert failures_of(result) == ["step silent failed: RuntimeError"]
