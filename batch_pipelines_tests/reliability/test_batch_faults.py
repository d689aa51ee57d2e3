"""20,000 items over five partitions through the Dagster batch path with faults on: ~10% transient line
failures per attempt, 1% permanently bad requests, and one batch-level fault per partition (expires
half-done, fails validation, token_limit_exceeded, stuck in finalizing, cancelled in the middle).

Every item ends answered or dead-lettered with its reason, no item is answered twice, and the provider
(read back through its own API) never received a request for an item it had already answered.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import dagster as dg
import pytest

from batch_pipelines.components.engine_session import open_engine, page_jobs
from batch_pipelines.demo.driver import PipelineDriver
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.reliability.conftest import SEED
from batch_pipelines_tests.reliability.figures import record
from batch_pipelines_tests.reliability.pipeline_setup import (
    INVALID_MARKER,
    batch_figures,
    days,
    make_driver,
    pipeline_spec,
    write_tickets,
)
from batch_pipelines_tests.reliability.provider_ledger import read_openai_ledger

TRANSIENT_LINE_FAULTS = {
    "server_error": 0.03,
    "unavailable": 0.02,
    "overloaded": 0.02,
    "rate_limited": 0.02,
    "no_response": 0.01,
}
BATCH_FAULTS = ("expire_half", "fail_validation", "token_limit_exceeded", "stuck_finalizing")
# Simulated seconds: a normal batch finalizes in 1 s; the stuck one takes 250 (5 s at the test scale).
STUCK_FINALIZING_S = 250.0
# While the cancelled partition's batch is created, requests run slowly enough to cancel it mid-way.
SLOW_LIFECYCLE = {"per_request_s": 0.5, "in_progress_min_s": 150.0, "in_progress_max_s": 150.0}


def run_batch_scenario(
    emulator: EmulatorProcess, workdir: Path, instance: dg.DagsterInstance, *, rows_per_partition: int
) -> None:
    partitions = len(BATCH_FAULTS) + 1
    frame = write_tickets(
        workdir, partitions=partitions, rows_per_partition=rows_per_partition, invalid_share=0.01, seed=SEED
    )
    spec = pipeline_spec(partitions)
    driver = make_driver(spec, emulator.openai_base_url, workdir, instance)
    emulator.configure(
        {
            "faults": {"batch_error_rates": TRANSIENT_LINE_FAULTS},
            "lifecycle": {"stuck_finalizing_s": STUCK_FINALIZING_S},
        }
    )
    keys = days(partitions)
    for name in BATCH_FAULTS:
        emulator.queue_scenario(name, provider="openai")
    for key in keys[:-1]:
        assert driver.submit(key).success

    default_lifecycle = emulator.configure({})["lifecycle"]
    emulator.configure({"lifecycle": SLOW_LIFECYCLE})
    assert driver.submit(keys[-1]).success
    emulator.configure({"lifecycle": {name: default_lifecycle[name] for name in SLOW_LIFECYCLE}})
    cancel_when_partly_done(driver, keys[-1])

    driver.collect_all(timeout_s=240, poll_s=0.2)

    ledger = read_openai_ledger(emulator.openai_base_url)
    input_ids = {
        (day, ticket_id)
        for day, ticket_id in zip(frame["created_at"].dt.date().cast(str), frame["ticket_id"], strict=True)
    }
    figures = record(
        batch_figures(
            f"{len(input_ids):,} items, {partitions} partitions",
            workdir,
            input_ids,
            wasted_calls=ledger.wasted_calls,
            provider_calls=ledger.lines_sent,
        )
    )
    assert figures.lost == 0
    assert figures.duplicate_rows == 0
    assert figures.wasted_calls == 0
    marked = frame.filter(frame["body"].str.contains(INVALID_MARKER, literal=True)).height
    # The marked rows, plus the line the fail_validation batch names as invalid (line 1 of that file).
    assert figures.dead_letter_reasons["invalid_request"] in (marked, marked + 1)
    # Transient faults within the attempt bound are answered; only a few items fail three times in a row.
    transient_dead = figures.dead_lettered - marked
    assert transient_dead < 0.01 * len(input_ids), figures.reasons()
    assert figures.with_result + figures.dead_lettered == len(input_ids)
    assert ledger.batches > partitions  # every batch-level fault led to a resubmission


def cancel_when_partly_done(driver: PipelineDriver, partition_key: str) -> None:
    async def cancel() -> None:
        async with open_engine(driver.batch_engine, driver.spec) as engine:
            jobs, _ = await page_jobs(engine.store, driver.spec, after=None, limit=100)
            [job] = [job for job in jobs if f".{partition_key}." in job.id]
            deadline = time.monotonic() + 60
            while (job := await engine.manager.refresh(job.id)).progress.completed == 0:
                assert time.monotonic() < deadline, "the slow batch never made progress"
                await asyncio.sleep(0.05)
            assert job.progress.completed < job.progress.total, "cancel came too late to be 'in the middle'"
            await engine.manager.cancel(job.id)

    asyncio.run(cancel())


def test_twenty_thousand_items_through_batch_faults(
    emulator: EmulatorProcess, tmp_path: Path, dagster_instance: dg.DagsterInstance
) -> None:
    run_batch_scenario(emulator, tmp_path / "work", dagster_instance, rows_per_partition=4_000)


@pytest.mark.soak
def test_soak_hundred_thousand_items_through_batch_faults(
    emulator: EmulatorProcess, tmp_path: Path, dagster_instance: dg.DagsterInstance
) -> None:
    run_batch_scenario(emulator, tmp_path / "work", dagster_instance, rows_per_partition=20_000)
