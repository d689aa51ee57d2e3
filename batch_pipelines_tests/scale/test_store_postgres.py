"""The BatchStore on PostgreSQL: the same API as on SQLite, shared by processes on different machines."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest

from batch_pipelines import BatchManager, BatchStatus, OpenAIProvider
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine.limits import BatchLimits
from batch_pipelines.engine.models import BatchJob, BatchRequest, BatchResult
from batch_pipelines.engine.records import BatchRecord, JobRecord
from batch_pipelines.engine.store import BatchStore

pytestmark = [pytest.mark.anyio, pytest.mark.services]


def _job(job_id: str, total: int) -> JobRecord:
    return JobRecord(
        id=job_id,
        provider="openai",
        model="gpt-4o-mini",
        kind="chat",
        created_at=time.time(),
        prepared=True,
        total=total,
        metadata={"partition": "2026-11-22"},
    )


def _launched_batch(job_id: str, requests: int) -> BatchRecord:
    return BatchRecord(
        job_id=job_id,
        attempt=1,
        chunk=0,
        request_count=requests,
        byte_count=10,
        est_tokens=5,
        recorded_at=time.time(),
        provider_batch_id="batch_1",
        raw_status="in_progress",
        phase=BatchStatus.PROCESSING,
        detail="in_progress",
    )


async def test_ledger_written_by_one_store_is_read_by_another(postgres_url: str) -> None:
    writer = BatchStore(postgres_url)
    await writer.initialize()
    await writer.initialize()  # harmless a second time
    await writer.save_job(_job("job-1", 3))
    await writer.add_requests("job-1", [(f"r{i}", i, 1, 0, i, "{}") for i in range(3)])
    await writer.add_batches([_launched_batch("job-1", 3)])
    await writer.upsert_results("job-1", [BatchResult(id="r0", response="a", input_tokens=3)])
    await writer.upsert_results(
        "job-1",
        [BatchResult(id="r0", response="a", input_tokens=3), BatchResult(id="r1", error="x", retryable=True)],
    )
    await writer.close()

    reader = BatchStore(postgres_url)
    await reader.initialize()
    counts = await reader.result_counts("job-1")
    assert (counts.succeeded, counts.errored, counts.retryable, counts.input_tokens) == (1, 1, 1, 3)
    rows = [row for page in reader.result_pages("job-1") for row in page]
    assert [request_id for request_id, _ in rows] == ["r0", "r1", "r2"]
    assert rows[2][1] is None
    job = await reader.get_job("job-1")
    assert job.provider_batch_ids == ["batch_1"]
    assert job.metadata == {"partition": "2026-11-22"}
    assert [j.id for j in await reader.list_jobs(open_only=True)] == ["job-1"]
    await reader.close()


async def test_only_one_of_two_stores_wins_a_launch_claim(postgres_url: str) -> None:
    first, second = BatchStore(postgres_url), BatchStore(postgres_url)
    for store in (first, second):
        await store.initialize()
    await first.save_job(_job("job-1", 1))
    queued = BatchRecord(
        job_id="job-1", attempt=1, chunk=0, request_count=1, byte_count=1, est_tokens=1, recorded_at=0.0
    )
    await first.add_batches([queued])
    seen_by_second = (await second.get_batches("job-1"))[0]
    assert await first.claim_launch(queued, 1.0)
    assert not await second.claim_launch(seen_by_second, 2.0)
    for store in (first, second):
        await store.close()


def _requests(count: int) -> list[BatchRequest]:
    return [
        BatchRequest(id=f"t{i}", messages=[{"role": "user", "content": f"ticket {i}"}]) for i in range(count)
    ]


async def _wait_until_completed(manager: BatchManager, job_id: str, timeout_s: float = 20.0) -> None:
    with anyio.move_on_after(timeout_s):
        while True:
            if (await manager.refresh(job_id)).status is BatchStatus.COMPLETED:
                return
            await anyio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not complete in {timeout_s}s: {await manager.get_job(job_id)}")


async def test_concurrent_submissions_of_one_partition_create_each_batch_once(
    postgres_url: str, emulator: EmulatorProcess
) -> None:
    """Two machines submitting the same partition at once (same job id, own store connections and clients)
    end up with one job whose provider batches were each created once, and every item answered once."""
    job_ids = [f"tickets.2026-11-{day:02d}.v1" for day in range(1, 5)]
    limits = BatchLimits(max_requests=10, max_bytes=1_000_000)
    submitters = []
    for _ in range(2):
        store = BatchStore(postgres_url)
        provider = OpenAIProvider(
            "gpt-4o-mini", base_url=emulator.openai_base_url, api_key="sk-test", limits=limits
        )
        submitters.append(BatchManager(provider, store))
    answers: list[BatchJob] = []

    async def submit(manager: BatchManager, job_id: str) -> None:
        answers.append(await manager.submit(_requests(25), job_id=job_id))

    async with anyio.create_task_group() as group:
        for job_id in job_ids:
            for manager in submitters:
                group.start_soon(submit, manager, job_id)

    assert sorted(job.id for job in answers) == sorted(job_ids * 2)
    async with httpx.AsyncClient(base_url=f"{emulator.url}/_emulator") as admin:
        stats = (await admin.get("/stats")).raise_for_status().json()
    created = stats["batches_created"]["openai"]
    assert created == 3 * len(job_ids)  # 25 requests in chunks of 10: three batches per job, once each

    reader = submitters[0]
    for job_id in job_ids:
        await _wait_until_completed(reader, job_id)
        results = await reader.get_results(job_id)
        assert sorted(r.id for r in results) == sorted(f"t{i}" for i in range(25))
        assert all(r.error is None for r in results)
    for manager in submitters:
        await manager.provider.aclose()
        await manager.store.close()


async def test_a_preparation_abandoned_by_a_dead_submitter_is_taken_over(
    postgres_url: str, emulator: EmulatorProcess
) -> None:
    store = BatchStore(postgres_url)
    await store.initialize()
    abandoned = _job("tickets.2026-11-01.v1", 0)
    abandoned.prepared, abandoned.prepare_lease_until = False, time.time() - 1
    assert await store.claim_job(abandoned)
    await store.add_requests(abandoned.id, [("half-written", 0, 1, 0, 0, "{}")])

    provider = OpenAIProvider("gpt-4o-mini", base_url=emulator.openai_base_url, api_key="sk-test")
    manager = BatchManager(provider, store)
    job = await manager.submit(_requests(5), job_id=abandoned.id)
    assert job.status in (BatchStatus.PENDING, BatchStatus.PROCESSING)
    await _wait_until_completed(manager, job.id)
    assert sorted(r.id for r in await manager.get_results(job.id)) == [f"t{i}" for i in range(5)]
    await provider.aclose()
    await store.close()


async def test_repeated_request_ids_are_returned_not_stored(postgres_url: str) -> None:
    store = BatchStore(postgres_url)
    await store.initialize()
    job_id = f"repeats-{time.time_ns()}"
    await store.save_job(_job(job_id, 4))
    assert await store.add_requests(job_id, [("a", 0, 1, 0, 0, "{}"), ("b", 1, 1, 0, 1, "{}")]) == []
    repeated = await store.add_requests(
        job_id, [("c", 2, 1, 0, 2, "{}"), ("a", 3, 1, 0, 3, "{}"), ("c", 4, 1, 0, 4, "{}")]
    )
    assert repeated == ["a", "c"]
    assert sorted(await store.chunk_request_ids(job_id, 1, 0)) == ["a", "b", "c"]
    await store.close()
