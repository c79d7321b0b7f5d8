"""`mlops demo`'s services: started in their own process groups, logging to files, announced
when they answer, stopped (SIGINT, then SIGTERM, then SIGKILL) with one line each.

Why not Dagster's own mechanisms: `dagster dev` supervises only its webserver, daemon and code
server; the demo also runs the prediction server and a build, and stops them all on one Ctrl-C.
Dagster's Ctrl-C handling is kept: the UI's group gets SIGINT first.
"""

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
BUILDING_PREFIX = "==> "  # `mlops build` prints it once its Dagster instance is prepared


@dataclass
class Service:
    name: str  # what the user reads: "Dagster UI", "Prediction server"
    command: list[str]
    url: str  # announced once `ready_url` answers
    ready_url: str
    log_path: Path
    note: str = ""
    cwd: Path | None = None
    uses_instance: bool = False  # started during a build only once the build prepared it
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


def run_until_interrupted(
    services: list[Service], environment: dict, on_tick=None, build: Build | None = None
) -> int:
    """Start the services (and the build, while they start), announce them, then wait for Ctrl-C
    (or SIGTERM) or a service's end."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    # started in the background of a non-interactive shell, the process inherits SIGINT ignored;
    # a Ctrl-C sent to its process group must still stop everything
    signal.signal(signal.SIGINT, _interrupt)
    code = 0
    try:
        if build is not None:
            code = _build_while_starting(build, services, environment)
        else:
            _start(services, environment)
        if not code:
            code = _serve(services, on_tick)
    except KeyboardInterrupt:
        say("")  # the terminal echoed ^C on the current line
        code = 130 if build is not None and build.interrupted else 0
    finally:
        _ignore_interrupts()  # in case the stop did not begin with one
        stop_all(services)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, previous)
    return code


def _serve(services: list[Service], on_tick) -> int:
    if not wait_until_ready(services):
        return 1
    say("Ctrl-C stops everything.")
    return _watch(services, on_tick)


def _start(services: list[Service], environment: dict) -> None:
    for service in services:
        if service.process is None:
            say(f"starting {service.name} ... (log: {service.log_path})")
            service.start(environment)


def _build_while_starting(build: Build, services: list[Service], environment: dict) -> int:
    """The build, with the services starting meanwhile (their start-up overlaps the training).

    Services that use the Dagster instance start once the build has prepared it: two processes
    creating a fresh instance's SQLite storage at once may both create its tables.
    """
    say(f"building the data sets (log: {build.log_path}) ...")
    _start([service for service in services if not service.uses_instance], environment)
    code = build.run(environment, on_prepared=lambda: _start(services, environment))
    if code and not build.keep_going:
        say("build failed; stopping the UI and the server (use --keep-going to keep them)")
    return code if not build.keep_going else 0


@dataclass
class Build:
    """`mlops build` in a child: its own lines echoed on the terminal, Dagster's and MLflow's
    log (its stderr) in `log_path`."""

    command: list[str]
    log_path: Path
    keep_going: bool = False
    interrupted: bool = False

    def run(self, environment: dict, on_prepared) -> int:
        """The build's exit code; `on_prepared()` once its instance is ready (its first
        `==> building` line) or, failing that, once it has ended."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        prepared = False
        with self.log_path.open("ab") as log:
            child = subprocess.Popen(
                self.command, stdout=subprocess.PIPE, stderr=log, env=environment, text=True
            )
            try:
                for line in child.stdout:
                    print(line, end="", flush=True)
                    if not prepared and line.startswith(BUILDING_PREFIX):
                        prepared = True
                        on_prepared()
                code = child.wait()
            except KeyboardInterrupt:
                self._stop(child)
                raise
        if not prepared:
            on_prepared()
        return code

    def _stop(self, child: subprocess.Popen) -> None:
        """A Ctrl-C reached the child too (same process group); a SIGTERM only this process."""
        self.interrupted = True
        if _received_sigterm:
            child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
        say("\ninterrupted: build stopped")


def _watch(services: list[Service], on_tick) -> int:
    while True:
        for service in services:
            if service.exited() is not None:
                say(f"{service.name} exited with code {service.exited()}; see {service.log_path}")
                return 1
        if on_tick is not None:
            on_tick()
        time.sleep(1)


_received_sigterm = False


def _interrupt(signum, frame):
    """The first Ctrl-C or SIGTERM starts the stop; later ones (a second Ctrl-C, or `uv run`
    forwarding the SIGTERM its process group also got) must not cut it short and leave
    processes behind."""
    global _received_sigterm
    _received_sigterm = _received_sigterm or signum == signal.SIGTERM
    _ignore_interrupts()
    raise KeyboardInterrupt


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
