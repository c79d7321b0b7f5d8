"""`mlops demo` announces each URL once it answers and stops cleanly on Ctrl-C: real processes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlops_assets_tests.live_server import free_port

pytestmark = pytest.mark.slow


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, read from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def descendants(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = [int(child) for child in children.read_text().split()] if children.exists() else []
    return found + [grand for child in found for grand in descendants(child)]


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# a demo started in the background of a non-interactive shell inherits SIGINT ignored
@pytest.mark.parametrize("inherited", [None, ignore_sigint], ids=["terminal", "sigint-ignored"])
def test_ctrl_c_stops_every_service_quietly(settings, tmp_path, inherited):
    ui_port, server_port = free_port(), free_port()
    environment = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    demo = subprocess.Popen(
        [sys.executable, "-m", "mlops_assets.cli", "demo", "--skip-build",
         "--ui-port", str(ui_port), "--port", str(server_port)],
        cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True, preexec_fn=inherited,
    )  # fmt: skip
    lines, children = [], []
    try:
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C stops everything"):
                break
        children = descendants(demo.pid)
        os.killpg(demo.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        started = time.monotonic()
        lines += demo.stdout.readlines()
        assert demo.wait(timeout=40) == 0
        assert time.monotonic() - started < 40
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    output = "".join(lines)
    assert f"Dagster UI:        http://127.0.0.1:{ui_port}" in output
    assert f"Prediction server: http://127.0.0.1:{server_port}" in output
    assert "Traceback" not in output and "Aborted" not in output
    assert [line for line in lines if line.startswith(("stopped", "killed"))] == [
        "stopped Dagster UI\n",
        "stopped Prediction server\n",
    ]
    assert len(children) >= 4  # dagster dev, its webserver, daemon and code server, the server
    time.sleep(0.5)
    assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []
    for pgid in children:
        assert group_members(pgid) == []
    assert (tmp_path / "data" / "logs" / "dagster.log").is_file()


def test_a_service_ignoring_sigint_is_killed_with_its_children(tmp_path, monkeypatch, capsys):
    from mlops_assets import demo

    monkeypatch.setattr(demo, "STOP_GRACE_SECONDS", 1)
    # a shell that ignores SIGINT and SIGTERM, with a child of its own
    stubborn = "trap '' INT TERM; sleep 300 & sleep 300"
    service = demo.Service("Stubborn", ["sh", "-c", stubborn], "-", "-", tmp_path / "s.log")
    service.start(dict(os.environ))
    time.sleep(0.5)
    members = group_members(service.process.pid)
    assert len(members) >= 2
    demo.stop_all([service])
    assert capsys.readouterr().out == ("killed Stubborn (SIGKILL: it ignored SIGINT for 1 s)\n")
    assert group_members(service.process.pid) == []


@pytest.mark.parametrize(
    "repeated",
    [
        pytest.param(None, id="ctrl-c"),
        # `uv run` (what `make demo` starts) forwards the SIGTERM its group also got: the second
        # one arrives while the demo is stopping and must not cut the stop short
        pytest.param(signal.SIGTERM, id="sigterm-twice"),
    ],
)
def test_ctrl_c_during_the_build_stops_the_build_and_the_services_started_meanwhile(
    settings, tmp_path, repeated
):
    """The server starts with the build, the UI once the build has prepared the instance; a
    Ctrl-C (or SIGTERM) while the build runs stops all three and leaves no process."""
    ui_port, server_port = free_port(), free_port()
    environment = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "home"),
        "https_proxy": "http://127.0.0.1:9",
        "no_proxy": "127.0.0.1,localhost",
    }
    (tmp_path / "home").mkdir()
    demo = subprocess.Popen(
        [sys.executable, "-m", "mlops_assets.cli", "demo",
         "--ui-port", str(ui_port), "--port", str(server_port)],
        cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    lines, children = [], []
    try:
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("starting Dagster UI"):  # after the first `==> building` line
                break
        time.sleep(1)
        children = descendants(demo.pid)
        os.killpg(demo.pid, repeated or signal.SIGINT)
        if repeated:
            time.sleep(0.3)
            demo.send_signal(repeated)
        lines += demo.stdout.readlines()
        assert demo.wait(timeout=90) == 130
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    output = "".join(lines)
    assert output.index("starting Prediction server") < output.index("==> building")
    assert output.index("==> building") < output.index("starting Dagster UI")
    assert "interrupted: build stopped" in output and "Traceback" not in output
    assert "Ctrl-C stops everything." not in output  # never announced as ready
    ended = [line.split()[1:3] for line in lines if line.startswith(("stopped", "killed"))]
    assert sorted(ended) == [["Dagster", "UI"], ["Prediction", "server"]]
    time.sleep(0.5)
    assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []
    for pgid in children:
        assert group_members(pgid) == []
