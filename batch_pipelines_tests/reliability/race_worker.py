"""One of two long-lived processes that launch the results run of one partition at once, for the
collection race tests. It reads commands on stdin, one a line, and answers each on stdout:

    race KEY ATTEMPT   tick the completion sensor until it requests KEY's results run for ATTEMPT, answer
                       `ready`, wait for a `go` line, launch that run, answer `done 0` (success) or
                       `done 1 WHY`; `stuck WHY` when no such run was requested within a minute
    quit

    python -m batch_pipelines_tests.reliability.race_worker WORKDIR BASE_URL PARTITIONS MAX_ATTEMPTS \
        STORE_URL|-

The process stays up between races, so a round costs two results runs, not two Python start-ups. Its
Dagster instance is its own and in memory: the two runs meet only where they race, in the batch store
and the Parquet tree (a shared Dagster instance on SQLite would cost each run ~2 s of disk syncs here).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import dagster as dg

from batch_pipelines.components.engine_session import open_engine, page_jobs
from batch_pipelines.components.policies import JOB_ATTEMPT_TAG
from batch_pipelines.demo.driver import PipelineDriver
from batch_pipelines.engine import BatchJob
from batch_pipelines_tests.reliability.pipeline_setup import make_driver, pipeline_spec

REQUEST_TIMEOUT_S = 60.0


def answer(line: str) -> None:
    print(line, flush=True)


def requested_run(driver: PipelineDriver, key: str, attempt: str) -> dg.RunRequest | None:
    deadline = time.monotonic() + REQUEST_TIMEOUT_S
    while time.monotonic() < deadline:
        for request in driver.tick().run_requests or []:
            if request.partition_key == key and request.tags.get(JOB_ATTEMPT_TAG) == attempt:
                return request
        time.sleep(0.02)
    return None


def jobs_as_stored(driver: PipelineDriver) -> str:
    async def read() -> list[BatchJob]:
        async with open_engine(driver.batch_engine, driver.spec) as engine:
            jobs, _ = await page_jobs(engine.store, driver.spec, after=None, limit=100, open_only=False)
            return jobs

    return "; ".join(
        f"{job.id} attempt {job.attempt} {job.status.value} ({job.detail})" for job in asyncio.run(read())
    )


def failure_of(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error is not None:
            return " ".join(event.step_failure_data.error.message.split())
    return "the run failed"


def race(driver: PipelineDriver, key: str, attempt: str) -> None:
    request = requested_run(driver, key, attempt)
    answer("ready")
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("expected go")
    if request is None:
        answer(f"stuck no results run was requested in {REQUEST_TIMEOUT_S:.0f}s; {jobs_as_stored(driver)}")
        return
    launched = driver.launch(request)
    if launched is None:
        answer("done 1 the run key was launched before")
    else:
        answer("done 0" if launched.success else f"done 1 {failure_of(launched)}")


def main(workdir: str, base_url: str, partitions: str, max_attempts: str, store_url: str) -> int:
    spec = pipeline_spec(int(partitions), max_attempts=int(max_attempts))
    with dg.DagsterInstance.ephemeral() as instance:
        driver = make_driver(
            spec, base_url, Path(workdir), instance, store_url=None if store_url == "-" else store_url
        )
        answer("started")
        for line in sys.stdin:
            command, *args = line.split()
            if command == "quit":
                return 0
            if command != "race":
                raise SystemExit(f"unknown command {command!r}")
            race(driver, *args)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))
