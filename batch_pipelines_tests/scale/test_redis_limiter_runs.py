"""Separate Dagster runs (each step in its own process) share one request budget through the Redis
limiter: together they never go faster than the limit, whichever run asks."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import pytest

from batch_pipelines_tests.scale import limited_job

pytestmark = pytest.mark.services

RUNS = 3
ADMISSIONS_PER_RUN = 15
REQUESTS_PER_MINUTE = 600  # 10 per second
BURST_SECONDS = 1.0


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    (tmp_path / "dagster_home").mkdir()
    with dg.DagsterInstance.local_temp(tempdir=str(tmp_path / "dagster_home")) as local:
        yield local


def test_runs_in_separate_processes_share_one_budget(
    redis_url: str, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    key = f"openai:test-{uuid.uuid4().hex[:8]}"
    outputs = [tmp_path / f"run-{index}.json" for index in range(RUNS)]

    def run(output: Path) -> bool:
        config = {
            "resources": {
                "rate_limiter": {
                    "config": {
                        "url": redis_url,
                        "requests_per_minute": REQUESTS_PER_MINUTE,
                        "tokens_per_minute": 1_000_000,
                        "burst_seconds": BURST_SECONDS,
                    }
                }
            },
            "ops": {
                "admit": {"config": {"key": key, "admissions": ADMISSIONS_PER_RUN, "output": str(output)}}
            },
        }
        with dg.execute_job(
            dg.reconstructable(limited_job.limited_job), instance, run_config=config
        ) as result:
            return result.success

    with ThreadPoolExecutor(RUNS) as pool:
        assert all(pool.map(run, outputs))

    records = [json.loads(output.read_text()) for output in outputs]
    assert len({record["run_id"] for record in records}) == RUNS
    pids = {record["pid"] for record in records}
    assert len(pids) == RUNS and os.getpid() not in pids  # each run's step ran in a process of its own
    admitted = sorted(moment for record in records for moment in record["admitted_at"])
    assert len(admitted) == RUNS * ADMISSIONS_PER_RUN
    rate = REQUESTS_PER_MINUTE / 60
    burst = rate * BURST_SECONDS
    for first in range(len(admitted)):
        for last in range(first, len(admitted)):
            count = last - first + 1
            span = admitted[last] - admitted[first]
            assert count <= rate * span + burst + 1, f"{count} admissions within {span:.3f}s"
    assert admitted[-1] - admitted[0] >= (len(admitted) - burst - 1) / rate
