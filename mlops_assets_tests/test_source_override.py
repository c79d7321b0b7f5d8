"""A file named by MLOPS_SOURCE_<NAME> sticks: later runs without the variable still have it."""

import hashlib
from pathlib import Path

import pytest

from mlops_assets.lib.sources import SourceUnavailable, fetch_source, source_status
from mlops_assets.lib.spec import parse_spec

UNREACHABLE = "http://127.0.0.1:9/remote.data"  # the discard port: no download ever succeeds
CSV = "x,y\n1,2\n3,4\n"
SPEC = """
name: remote
source: {url}
sha256: {sha}
read: {{header: auto}}
columns: [{{name: x, type: float}}, {{name: y, type: float}}]
target: y
task: regression
"""


def remote_spec(sha: str | None):
    return parse_spec(SPEC.format(url=UNREACHABLE, sha=sha or "null"), Path("remote.yaml"))


@pytest.fixture
def user_copy(tmp_path, monkeypatch) -> Path:
    """A small CSV in a temp folder, named by MLOPS_SOURCE_REMOTE."""
    path = tmp_path / "mine" / "remote.csv"
    path.parent.mkdir()
    path.write_text(CSV)
    monkeypatch.setenv("MLOPS_SOURCE_REMOTE", str(path))
    return path


def test_a_copy_with_the_specs_sha256_is_cached_as_the_download(tmp_path, user_copy, monkeypatch):
    spec = remote_spec(hashlib.sha256(CSV.encode()).hexdigest())
    sources = tmp_path / "sources"
    assert fetch_source(spec, sources) == user_copy
    monkeypatch.delenv("MLOPS_SOURCE_REMOTE")
    user_copy.unlink()  # the user's file is gone and the network unreachable: the cache answers
    cached = fetch_source(spec, sources)
    assert cached == sources / "remote" / "remote.data"
    assert cached.read_text() == CSV
    assert source_status(spec, sources) == f"downloaded to {cached}"


def test_a_copy_with_another_sha256_is_kept_beside_the_download(tmp_path, user_copy, monkeypatch):
    spec = remote_spec("ab" * 32)  # e.g. a copy with a header row, where the spec's file has none
    sources = tmp_path / "sources"
    fetch_source(spec, sources)
    monkeypatch.delenv("MLOPS_SOURCE_REMOTE")
    kept = fetch_source(spec, sources)
    assert kept.read_text() == CSV and kept.parent.name == "override"
    assert not (sources / "remote" / "remote.data").exists()  # never passed off as the download
    assert "local copy kept at" in source_status(spec, sources)
    assert "not downloaded yet" not in source_status(spec, sources)


def test_a_damaged_kept_copy_is_not_used(tmp_path, user_copy, monkeypatch):
    spec = remote_spec("ab" * 32)
    sources = tmp_path / "sources"
    fetch_source(spec, sources)
    monkeypatch.delenv("MLOPS_SOURCE_REMOTE")
    fetch_source(spec, sources).write_text("x,y\n1,999\n")
    with pytest.raises(SourceUnavailable, match="set MLOPS_SOURCE_REMOTE to a local copy"):
        fetch_source(spec, sources)


def test_a_changed_user_file_replaces_the_kept_copy(tmp_path, user_copy, monkeypatch):
    spec = remote_spec(None)  # no sha256 in the spec: any copy is the download
    sources = tmp_path / "sources"
    fetch_source(spec, sources)
    user_copy.write_text(CSV + "5,6\n")
    fetch_source(spec, sources)
    monkeypatch.delenv("MLOPS_SOURCE_REMOTE")
    assert fetch_source(spec, sources).read_text() == CSV + "5,6\n"
