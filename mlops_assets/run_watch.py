"""Watch a build's in-process Dagster run from a thread: say when it waits for the `duckdb`
pool and which run holds it, and stop it on SIGINT / SIGTERM while it waits.

Dagster's in-process executor records a SIGINT or SIGTERM and acts on it only when the next step
starts, so a run waiting for a pool slot would ignore Ctrl-C for as long as the slot is held.
Python writes every signal it handles to the wakeup fd; this thread reads it.

Why not Dagster's own mechanisms: Dagster stops a run through its run launcher (Terminate in
the UI, run monitoring's timeouts), and this run has none: it executes inside `mlops build`'s
process (`materialize()`), with no daemon. Which run holds the pool is only in the event log
storage's concurrency info, which is what the message to the user names.
"""

from __future__ import annotations

import os
import select
import signal
import threading

from dagster import DagsterInstance, RunsFilter

BUILD_TAG = "mlops/build"
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class RunWatch:
    def __init__(self, instance: DagsterInstance, build_id: str, pool: str, interval=0.5):
        self.instance, self.build_id, self.pool, self.interval = instance, build_id, pool, interval
        self.interrupted: int | None = None  # the signal number received while a step ran
        self._stop = threading.Event()
        self._said = ""

    def __enter__(self) -> RunWatch:
        # Dagster tees the process's output through a helper process while the run executes;
        # a signal to the process group ends that helper, so write to the terminal itself
        self._console = os.dup(1)
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._previous_fd = None
        if threading.current_thread() is threading.main_thread():  # only it may set the fd
            self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._watch, name="mlops-run-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._previous_fd is not None:
            signal.set_wakeup_fd(self._previous_fd)
        for fd in (self._read, self._write, self._console):
            os.close(fd)

    def _watch(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._read], [], [], self.interval)
            received = [n for n in os.read(self._read, 64)] if ready else []
            run = self._run()
            if run is None:
                continue
            holders = self._holders_while_waiting(run.run_id)
            if holders is not None:
                self._say_waiting(run, holders)
            for signum in received:
                if signum in EXIT_CODES:
                    self._on_signal(run, signum, holders)

    def _run(self):
        runs = self.instance.get_runs(RunsFilter(tags={BUILD_TAG: self.build_id}), limit=1)
        return runs[0] if runs else None

    def _holders_while_waiting(self, run_id: str) -> list[str] | None:
        """The runs holding the pool while this run waits for it; None when it does not wait."""
        info = self.instance.event_log_storage.get_concurrency_info(self.pool)
        waiting = any(
            step.run_id == run_id and step.assigned_timestamp is None for step in info.pending_steps
        )
        if not waiting or any(slot.run_id == run_id for slot in info.claimed_slots):
            return None
        return sorted({slot.run_id for slot in info.claimed_slots})

    def _say_waiting(self, run, holders: list[str]) -> None:
        described = ", ".join(self._describe(holder) for holder in holders) or "no run (yet)"
        text = f"run {run.run_id} waits for pool {self.pool}, held by {described}"
        if text != self._said:
            self._say(text)
            self._said = text

    def _say(self, text: str) -> None:
        os.write(self._console, (text + "\n").encode())

    def _describe(self, run_id: str) -> str:
        holder = self.instance.get_run_by_id(run_id)
        if holder is None:
            return f"run {run_id} (unknown to this instance)"
        tags = holder.tags
        return (
            f"run {run_id} ({tags.get('mlops/dataset', holder.job_name)}, "
            f"{holder.status.value}, pid {tags.get('mlops/pid', '?')})"
        )

    def _on_signal(self, run, signum: int, holders: list[str] | None) -> None:
        name = signal.Signals(signum).name
        if holders is None:  # a step runs: Dagster interrupts it and fails the run itself
            self.interrupted = signum
            return
        message = f"mlops build stopped by {name} while waiting for pool {self.pool}"
        self.instance.report_run_canceled(run, message=message)
        self.instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        self._say(f"{message}: run {run.run_id} canceled")
        os._exit(EXIT_CODES[signum])  # the main thread is inside Dagster's wait loop
