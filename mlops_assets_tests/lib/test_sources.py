import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from mlops_assets.lib.sources import SourceUnavailable, fetch_source, initial_partition
from mlops_assets.lib.spec import parse_spec

SPEC = """
name: remote
source: {url}
sha256: {sha}
read: {{header: false}}
columns: [{{name: x, type: float}}, {{name: y, type: float}}]
target: y
task: regression
"""


@pytest.fixture
def file_server(tmp_path):
    """A real HTTP server on loopback serving `tmp_path/www`."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def remote_spec(url, sha):
    return parse_spec(SPEC.format(url=url, sha=sha), Path("remote.yaml"))


def test_download_is_verified_and_cached(tmp_path, file_server):
    root, base = file_server
    (root / "remote.data").write_text("1,2\n3,4\n")
    sha = hashlib.sha256(b"1,2\n3,4\n").hexdigest()
    spec = remote_spec(f"{base}/remote.data", sha)
    path = fetch_source(spec, tmp_path / "sources")
    assert path.read_text() == "1,2\n3,4\n"
    (root / "remote.data").unlink()  # the cached copy is used from now on
    assert fetch_source(spec, tmp_path / "sources") == path
    assert initial_partition(spec) == "remote.data"


def test_checksum_mismatch_is_refused_and_not_cached(tmp_path, file_server):
    root, base = file_server
    (root / "remote.data").write_text("tampered\n")
    spec = remote_spec(f"{base}/remote.data", "ab" * 32)
    with pytest.raises(SourceUnavailable, match="expected abab"):
        fetch_source(spec, tmp_path / "sources")
    assert not list((tmp_path / "sources").rglob("remote.data*"))


def test_unreachable_source_tells_which_variable_to_set(tmp_path, builtin_specs, monkeypatch):
    monkeypatch.setenv("MLOPS_SOURCE_ABALONE", "http://127.0.0.1:9/abalone.data")
    with pytest.raises(SourceUnavailable, match="set MLOPS_SOURCE_ABALONE to a local copy"):
        fetch_source(builtin_specs["abalone"], tmp_path)


def test_override_with_a_local_path(tmp_path, builtin_specs, monkeypatch):
    local = tmp_path / "copy.csv"
    local.write_text("x")
    monkeypatch.setenv("MLOPS_SOURCE_ABALONE", str(local))
    assert fetch_source(builtin_specs["abalone"], tmp_path / "sources") == local
    assert initial_partition(builtin_specs["abalone"]) == "abalone.data"
    monkeypatch.setenv("MLOPS_SOURCE_ABALONE", str(tmp_path / "absent.csv"))
    with pytest.raises(SourceUnavailable, match="absent.csv does not exist"):
        fetch_source(builtin_specs["abalone"], tmp_path / "sources")


def test_builtin_sklearn_sets_use_user_facing_names(tmp_path, builtin_specs):
    iris = pd.read_csv(fetch_source(builtin_specs["iris"], tmp_path))
    assert list(iris.columns) == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
        "species",
    ]
    assert set(iris["species"]) == {"setosa", "versicolor", "virginica"}
    diabetes = pd.read_csv(fetch_source(builtin_specs["diabetes"], tmp_path))
    assert diabetes["age"].max() > 50  # unscaled: real units, not centred values
    assert set(diabetes["sex"]) == {1, 2}
