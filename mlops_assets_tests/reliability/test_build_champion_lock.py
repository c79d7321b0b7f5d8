"""The champion decision is serialized between builds even without the project's dagster.yaml."""

import subprocess

import pytest

from mlops_assets.lib.locks import exclusive_lock
from mlops_assets_tests.reliability.build_process import BuildHome

HELD_FOR = 120  # seconds: longer than an iris build takes on its own


@pytest.mark.slow
def test_a_build_waits_for_the_champion_decision_another_process_holds(tmp_path):
    home = BuildHome.create(tmp_path / "home")
    (home.root / "dagster_home" / "dagster.yaml").unlink()  # no `duckdb` pool to serialize on
    with exclusive_lock(home.root / "data" / "models" / ".iris.champion.lock"):
        build = home.start("iris")
        with pytest.raises(subprocess.TimeoutExpired):
            build.wait(timeout=HELD_FOR)
    assert build.wait(timeout=300) == 0, home.output()
    assert "iris: built" in home.output()
