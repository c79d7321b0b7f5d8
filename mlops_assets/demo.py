"""`mlops demo`'s services: started in their own process groups, logging to files, announced
when they answer, stopped (SIGINT, then SIGTERM, then SIGKILL) with one line each."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

READY_TIMEOUT_SECONDS = 180
PROGRESS_EVERY_SECONDS = 10
# SIGINT lets dagster dev stop its webserver, daemon and code server; a group still alive after
# the grace period gets SIGTERM, then SIGKILL
STOP_GRACE_SECONDS = 20
ESCALATION_SECONDS = 5


@dataclass
class Service:
    name: str  # what the user reads: "Dagster UI", "Prediction server"
    command: list[str]
    url: str  # announced once `ready_url` answers
    ready_url: str
    log_path: Path
    note: str = ""
    cwd: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, environment: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # a session of its own: Ctrl-C in the terminal reaches `mlops demo` only, which then
            # signals each whole group (dagster dev's webserver, daemon and code server too)
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=self.cwd,
                start_new_session=True,
            )

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.ready_url, timeout=2) as response:
                return response.status < 500
        except (urllib.error.URLError, OSError):
            return False

    def exited(self) -> int | None:
        return self.process.poll()

    def group_alive(self) -> bool:
        self.process.poll()  # reap the leader: a zombie would still count as a member
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def wait_group(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.group_alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True


def say(text: str) -> None:
    print(text, flush=True)


def wait_until_ready(services: list[Service]) -> bool:
    """Announce each service's URL when it answers; False (having said why) if one died."""
    waiting = list(services)
    for service in waiting:
        say(f"starting {service.name} ... (log: {service.log_path})")
    started, last_progress = time.monotonic(), time.monotonic()
    while waiting:
        for service in list(waiting):
            if service.answers():
                say(f"{service.name + ':':<19}{service.url}{service.note}")
                waiting.remove(service)
            elif service.exited() is not None:
                say(f"{service.name} exited with code {service.exited()}; see {service.log_path}")
                return False
        if not waiting:
            return True
        elapsed = time.monotonic() - started
        if elapsed > READY_TIMEOUT_SECONDS:
            names = ", ".join(service.name for service in waiting)
            say(f"{names} did not answer within {READY_TIMEOUT_SECONDS} s; see the log")
            return False
        if time.monotonic() - last_progress >= PROGRESS_EVERY_SECONDS:
            say(f"still starting {', '.join(s.name for s in waiting)} ... ({elapsed:.0f} s)")
            last_progress = time.monotonic()
        time.sleep(0.25)
    return True


def stop_all(services: list[Service]) -> None:
    """SIGINT to every group at once, then escalate per group; one line per service."""
    started = [service for service in services if service.process is not None]
    for service in started:
        service.signal_group(signal.SIGINT)
    for service in started:
        if service.wait_group(STOP_GRACE_SECONDS):
            say(f"stopped {service.name}")
        else:
            say(_escalate(service))


def _escalate(service: Service) -> str:
    for signum in (signal.SIGTERM, signal.SIGKILL):
        service.signal_group(signum)
        if service.wait_group(ESCALATION_SECONDS):
            name = signal.Signals(signum).name
            return f"killed {service.name} ({name}: it ignored SIGINT for {STOP_GRACE_SECONDS} s)"
    return f"could not kill {service.name} (process group {service.process.pid})"


def run_until_interrupted(services: list[Service], environment: dict, on_tick=None) -> int:
    """Start the services, announce them, then wait for Ctrl-C (or SIGTERM) or a service's end."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    # started in the background of a non-interactive shell, the process inherits SIGINT ignored;
    # a Ctrl-C sent to its process group must still stop everything
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 0
    try:
        for service in services:
            service.start(environment)
        if not wait_until_ready(services):
            code = 1
        else:
            say("Ctrl-C stops everything.")
            code = _watch(services, on_tick)
    except KeyboardInterrupt:
        say("")  # the terminal echoed ^C on the current line
    finally:
        # a second Ctrl-C must not cut the escalation short and leave processes behind
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop_all(services)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, previous)
    return code


def _watch(services: list[Service], on_tick) -> int:
    while True:
        for service in services:
            if service.exited() is not None:
                say(f"{service.name} exited with code {service.exited()}; see {service.log_path}")
                return 1
        if on_tick is not None:
            on_tick()
        time.sleep(1)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
