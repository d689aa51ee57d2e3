"""Start the emulator as a child process and talk to its admin API: what tests, benchmarks and the demo use.

with EmulatorProcess(time_scale=0.02) as emulator:
    client = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-test")
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from batch_pipelines.emulator import API_KEYS_ENV, LIFELINE_FD_ENV, READY_PREFIX

# A crash is reported at once; this only bounds a start that hangs. Importing the server took over
# 30 s on a 2-core machine whose other services kept both cores busy.
STARTUP_TIMEOUT_S = 120.0


class EmulatorStartError(RuntimeError):
    """The emulator process exited or stayed silent instead of announcing its URL."""


class EmulatorProcess:
    def __init__(
        self,
        config: dict[str, Any] | str | Path | None = None,
        *,
        time_scale: float | None = None,
        seed: int | None = None,
        state_dir: str | Path | None = None,
        api_keys: Sequence[str] = (),
        rpm: int | None = None,
        tpm: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
    ) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix="emulator-")
        self.config_path: Path | None = None
        if isinstance(config, dict):
            self.config_path = Path(self._workdir.name) / "config.json"
            self.config_path.write_text(json.dumps(config))
        elif config is not None:
            self.config_path = Path(config)
        self.time_scale = time_scale
        self.seed = seed
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.api_keys = tuple(api_keys)
        self.rpm = rpm
        self.tpm = tpm
        self.host = host
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None  # the pipe's write end: the child exits when it closes
        self._log_path = Path(self._workdir.name) / "emulator.log"
        self.url = ""

    # --- addresses -----------------------------------------------------------------------------------
    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    # --- process control -----------------------------------------------------------------------------
    def command(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "batch_pipelines.emulator",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        if self.config_path is not None:
            command += ["--config", str(self.config_path)]
        optional = {
            "--rpm": self.rpm,
            "--tpm": self.tpm,
            "--time-scale": self.time_scale,
            "--seed": self.seed,
            "--state-dir": self.state_dir,
        }
        for flag, value in optional.items():
            if value is not None:
                command += [flag, str(value)]
        return command

    def start(self) -> EmulatorProcess:
        if self._process is not None and self._process.poll() is None:
            raise RuntimeError("the emulator is already running")
        log = self._log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop(API_KEYS_ENV, None)
        if self.api_keys:
            env[API_KEYS_ENV] = ",".join(self.api_keys)  # not on the command line, where `ps` shows it
        # The child ends when this process does, even killed: it watches a pipe only we can write to.
        read_end, self._lifeline = os.pipe()
        env[LIFELINE_FD_ENV] = str(read_end)
        try:
            self._process = subprocess.Popen(
                self.command(), stdout=subprocess.PIPE, stderr=log, env=env, pass_fds=(read_end,)
            )
        finally:
            os.close(read_end)
            log.close()
        self.url = self._wait_for_url(self._process)
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def _wait_for_url(self, process: subprocess.Popen[bytes]) -> str:
        assert process.stdout is not None
        deadline = time.monotonic() + self.startup_timeout_s
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(timeout=0.2):
                    if process.poll() is not None:
                        break
                    continue
                line = process.stdout.readline().decode()
                if line.startswith(READY_PREFIX):
                    return line[len(READY_PREFIX) :].strip()
                if not line and process.poll() is not None:
                    break
        process.kill()
        process.wait()
        self._close_pipes(process)
        raise EmulatorStartError(f"the emulator did not start: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self._log_path.read_text()[-2000:] or "(no output)"
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful stop (SIGTERM), then SIGKILL if it does not exit in time."""
        process = self._process
        if process is None:
            return
        if process.poll() is not None:
            self._close_pipes(process)
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._close_pipes(process)

    def kill(self) -> None:
        """SIGKILL: the emulator dies at once, as in a crash."""
        process = self._process
        if process is None:
            return
        if process.poll() is not None:
            self._close_pipes(process)
            return
        process.kill()
        process.wait()
        self._close_pipes(process)

    def restart(self) -> EmulatorProcess:
        """Stop and start again on the same port with the same state directory and settings."""
        self.stop()
        return self.start()

    def _close_pipes(self, process: subprocess.Popen[bytes]) -> None:
        if process.stdout is not None and not process.stdout.closed:
            process.stdout.close()
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
        self._workdir.cleanup()

    # --- admin API -----------------------------------------------------------------------------------
    def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = httpx.request(method, f"{self.url}/_emulator/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def configure(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Deep-merge ``patch`` into the running emulator's config; returns the whole new config."""
        result: dict[str, Any] = self._admin("POST", "config", patch)
        return result

    def queue_scenario(self, name: str, provider: str | None = None, count: int = 1) -> None:
        self._admin("POST", "scenarios", {"name": name, "provider": provider, "count": count})

    def forget_batch(self, batch_id: str) -> None:
        """Make the emulator forget a batch and its result files (a provider past its retention period)."""
        self._admin("DELETE", f"batches/{batch_id}")

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("GET", "stats")
        return result
