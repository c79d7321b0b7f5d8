"""The server's fast paths use dependency internals: an untested version must fail loudly."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from serving.internals import TESTED_LINES, UnsupportedDependency, check_internals, unsupported


def test_the_installed_dependencies_are_the_tested_ones():
    check_internals()  # raises, naming the dependency, when uv.lock drifts from TESTED_LINES


def test_an_untested_version_is_named_with_the_tested_line():
    installed = {name: lines[0] + ".0" for name, lines in TESTED_LINES.items()}
    installed["scikit-learn"] = "1.10.0"
    [problem] = unsupported(installed)
    assert problem.startswith("scikit-learn 1.10.0 is installed")
    assert "1.9.x" in problem and "scikit-learn==1.9.*" in problem


def test_the_server_refuses_to_start_on_an_untested_version(tmp_path):
    # a fake distribution metadata for uvicorn, first on sys.path, stands for an upgrade
    dist = tmp_path / "uvicorn-9.0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: uvicorn\nVersion: 9.0.0\n")
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r}); "
        "from serving.server import main; main(['--port', '0'])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "uvicorn 9.0.0 is installed" in done.stderr
    assert UnsupportedDependency.__name__ in done.stderr


@pytest.mark.parametrize("name", sorted(TESTED_LINES))
def test_pyproject_pins_each_internal_to_its_tested_line(name):
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    pins = {
        re.sub(r"\[.*\]", "", d) for d in pyproject["project"]["dependencies"] if d.startswith(name)
    }
    assert pins == {f"{name}=={TESTED_LINES[name][-1]}.*"}
