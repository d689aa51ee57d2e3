"""`batch-pipelines demo` SIGKILLed early, while submitting and while collecting, and run again each time
on the same working folder: it finishes with every ticket answered exactly once, sent to the provider
once, and no process of a killed run is left behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from batch_pipelines.cli import main

ROWS_PER_DAY = "20"
# The kill times (3 s, 8 s, 20 s after start) are each paired with the stage the demo should
# have reached by then on a fast machine; a slow one waits for the stage instead of killing too early.
DEADLINE_S = 600.0


class DemoRun:
    """The demo in its own session (so its processes can be found after it dies), its output read."""

    def __init__(self, workdir: Path) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batch_pipelines.cli",
                "demo",
                "--workdir",
                str(workdir),
                "--rows-per-day",
                ROWS_PER_DAY,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def kill_when(self, reached: Callable[[], bool], after_s: float) -> None:
        """SIGKILL the demo alone (not its children) once `reached()` holds and `after_s` have passed."""
        deadline = time.monotonic() + DEADLINE_S
        while not (reached() and time.monotonic() - self.started >= after_s):
            assert self.process.poll() is None, f"the demo ended before the kill:\n{self.output}"
            assert time.monotonic() < deadline, f"stage not reached:\n{self.output}"
            time.sleep(0.05)
        assert self.process.poll() is None, f"the demo ended before the kill:\n{self.output}"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def finish(self) -> str:
        assert self.process.wait(DEADLINE_S) == 0, self.output
        self._reader.join(10)
        return self.output

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def end_leftovers(self) -> None:
        """SIGKILL whatever of this run's session is still there (only after a failed check)."""
        for member in _session_members(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(member.split(":", 1)[0]), signal.SIGKILL)

    def leftover_processes(self, wait_s: float = 30.0) -> list[str]:
        """Processes still in the killed demo's session after `wait_s` (its children must end by then)."""
        deadline = time.monotonic() + wait_s
        while (left := _session_members(self.process.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left


def _session_members(session_id: int) -> list[str]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, pgrp, session, …
        if int(fields[3]) == session_id and fields[0] != "Z":
            members.append(f"{entry.name}: {cmdline}")
    return members


def _provider_batches_recorded(workdir: Path) -> bool:
    store = workdir / "batches.db"
    if not store.exists():
        return False
    try:
        connection = sqlite3.connect(store, timeout=1)
        try:
            row = connection.execute(
                "SELECT count(*) FROM bp_provider_batches WHERE provider_batch_id IS NOT NULL"
            )
            return bool(row.fetchone()[0])
        finally:
            connection.close()
    except sqlite3.Error:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds a session's processes in /proc")
def test_the_demo_killed_three_times_and_run_again_answers_every_ticket_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / "work"
    stages: list[tuple[float, Callable[[DemoRun], bool]]] = [
        (3.0, lambda run: any(line.startswith("emulator: ") for line in run.lines)),  # emulator child up
        (8.0, lambda run: _provider_batches_recorded(workdir)),  # the store shows a provider batch
        (20.0, lambda run: any("collected " in line for line in run.lines)),  # collecting
    ]
    for after_s, reached in stages:
        run = DemoRun(workdir)
        try:
            run.kill_when(lambda run=run, reached=reached: reached(run), after_s)  # type: ignore[misc]
            assert run.leftover_processes() == [], run.output
        finally:
            run.end_leftovers()

    last = DemoRun(workdir)
    try:
        output = last.finish()
        assert "Traceback" not in output and "Per partition" in output
        assert last.leftover_processes(wait_s=0) == []
    finally:
        last.end_leftovers()

    inputs = pl.read_parquet(workdir / "inputs" / "support_tickets" / "*.parquet")
    answered = "SELECT count(*), count(DISTINCT id), (SELECT count(*) FROM dead_letters) FROM results"
    assert main(["query", "--workdir", str(workdir), "--format", "csv", answered]) == 0
    assert capsys.readouterr().out.splitlines()[1] == f"{inputs.height},{inputs.height},0"

    # From the provider's side: every ticket was sent in exactly one batch that was kept.
    emulator_batches = [
        json.loads(path.read_text()) for path in (workdir / "demo" / "emulator" / "batches").glob("*.json")
    ]
    assert sum(batch["total"] for batch in emulator_batches) == inputs.height
