"""One pipeline step in its own process, optionally killed with SIGKILL at a chosen moment, for the crash
tests: the kill is real (no cleanup, no `finally`), only its timing is chosen.

    python -m batch_pipelines_tests.reliability.crash_runner \
        STEP WORKDIR DAGSTER_HOME BASE_URL PARTITIONS KEY KILL_AT

STEP: `submit` (the submission job for KEY) or `collect` (sensor ticks until KEY's results run, then
that run). KILL_AT: `never`; `after_create` (the provider answered the batch create call; the answer is
not recorded yet); `results_rename` / `dead_letters_rename` (that table's file for KEY is fully written
to its temp file and about to replace the old one).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import dagster as dg
import httpx

from batch_pipelines_tests.reliability.pipeline_setup import make_driver, pipeline_spec

KILL_POINTS = ("never", "after_create", "results_rename", "dead_letters_rename")


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_before_replacing(table: str, partition_key: str) -> None:
    """os.replace raises the `os.rename` audit event before it renames: die right there."""
    target = f"{os.sep}{table}{os.sep}"

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "os.rename" and len(args) >= 2:
            destination = str(args[1])
            if target in destination and destination.endswith(f"{partition_key}.parquet"):
                die()

    sys.addaudithook(hook)


def kill_after_batch_create() -> None:
    """At the HTTP boundary: once the provider has answered a batch create, die before anyone reads it."""
    send = httpx.AsyncHTTPTransport.handle_async_request

    async def handle(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        response = await send(self, request)
        if request.method == "POST" and request.url.path.endswith("/batches") and response.status_code == 200:
            die()
        return response

    httpx.AsyncHTTPTransport.handle_async_request = handle  # type: ignore[method-assign]


def main(step: str, workdir: str, home: str, base_url: str, partitions: str, key: str, kill_at: str) -> int:
    assert kill_at in KILL_POINTS, kill_at
    if kill_at == "after_create":
        kill_after_batch_create()
    elif kill_at != "never":
        kill_before_replacing(kill_at.removesuffix("_rename"), key)
    with dg.DagsterInstance.local_temp(tempdir=home) as instance:
        driver = make_driver(pipeline_spec(int(partitions)), base_url, Path(workdir), instance)
        if step == "submit":
            return 0 if driver.submit(key).success else 1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for request in driver.tick().run_requests or []:
                if request.partition_key == key:
                    launched = driver.launch(request)
                    return 0 if launched is not None and launched.success else 1
            time.sleep(0.05)
    print(f"no results run was requested for {key}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:8]))
