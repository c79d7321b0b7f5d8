"""A crash while a bundle is written leaves a staging folder; the next promotion removes it."""

import os
import signal
import subprocess
import sys
import time

import pytest
from sklearn.linear_model import LinearRegression

from mlops_contract.bundle import (
    MODEL_FILE,
    STALE_STAGING_SECONDS,
    load_bundle,
    read_pointer,
    write_bundle,
    writer_tag,
)

# writes a bundle whose model blocks half-way through pickling, so the test can kill it there
SLOW_WRITER = """
import sys, time
from pathlib import Path
from mlops_contract import bundle

class BlocksWhilePickled:
    def __reduce__(self):
        print("writing", flush=True)
        time.sleep(120)
        return (BlocksWhilePickled, ())

model = [b"x" * 2_000_000, BlocksWhilePickled()]
bundle.write_bundle(Path(sys.argv[1]), "v1-crashed", model, {"name": "toy", "version": "1"})
"""


@pytest.fixture
def model():
    return LinearRegression().fit([[0.0], [1.0], [2.0]], [1.0, 3.0, 5.0])


def staging_folders(dataset_dir):
    return sorted(p.name for p in (dataset_dir / "bundles").glob(".*"))


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def leave_staging(dataset_dir, name: str, age_seconds: float = 0) -> None:
    folder = dataset_dir / "bundles" / name
    folder.mkdir(parents=True)
    (folder / MODEL_FILE).write_bytes(b"\x80\x04truncated")
    stamp = time.time() - age_seconds
    os.utime(folder, (stamp, stamp))


@pytest.mark.slow
def test_a_bundle_write_killed_half_way_is_cleaned_at_the_next_promotion(tmp_path, model):
    writer = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert writer.stdout.readline().strip() == "writing"
    os.killpg(writer.pid, signal.SIGKILL)
    writer.wait(timeout=10)
    [left] = staging_folders(tmp_path)
    assert left.startswith(f".v1-crashed.pid{writer.pid}@")
    assert (tmp_path / "bundles" / left / MODEL_FILE).is_file()
    assert read_pointer(tmp_path) is None  # the partial bundle is not servable

    write_bundle(tmp_path, "v2", model, {"name": "toy", "version": "2"})
    assert staging_folders(tmp_path) == []
    assert load_bundle(tmp_path).version == "2"
    assert sorted(p.name for p in (tmp_path / "bundles").iterdir()) == ["v2"]


def test_only_abandoned_staging_folders_are_removed(tmp_path, model):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = writer_tag().split("@")[1]
        leave_staging(tmp_path, f".v1-a.pid{dead_pid()}@{host}.x1")  # writer gone
        leave_staging(tmp_path, f".v1-b.pid{sleeper.pid}@{host}.x2")  # being written right now
        old = STALE_STAGING_SECONDS + 60
        leave_staging(tmp_path, f".v1-c.pid{sleeper.pid}@{host}.x3", age_seconds=old)  # pid reused
        other_host = f".v1-d.pid{dead_pid()}@elsewhere.x4"  # its pid means nothing here
        leave_staging(tmp_path, other_host)
        leave_staging(tmp_path, ".v1-e.unnamed", age_seconds=old)  # no writer recorded, old
        write_bundle(tmp_path, "v2", model, {"name": "toy", "version": "2"})
        assert staging_folders(tmp_path) == [f".v1-b.pid{sleeper.pid}@{host}.x2", other_host]
        assert load_bundle(tmp_path).version == "2"
    finally:
        sleeper.kill()
        sleeper.wait()
