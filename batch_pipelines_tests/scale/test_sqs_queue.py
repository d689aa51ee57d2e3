"""The realtime work queue on SQS (moto's server), its ledger on PostgreSQL, and worker runs scaled by
queue depth through a Dagster sensor."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import boto3
import dagster as dg
import pytest

from batch_pipelines.components import BatchEngineResource, key_from_environment
from batch_pipelines.components.rate_limiter_resource import RateLimiterResource
from batch_pipelines.components.realtime_worker import build_realtime_worker_job
from batch_pipelines.components.worker_scaling import WORKER_POOL_TAG, build_worker_scaling_sensor
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine.models import BatchRequest, BatchResult
from batch_pipelines.realtime import make_realtime_provider, process_realtime
from batch_pipelines.realtime.queue import Outcome
from batch_pipelines.realtime.sqs_queue import SqsWorkQueue

pytestmark = [pytest.mark.anyio, pytest.mark.services, pytest.mark.usefixtures("aws_credentials")]


def _tickets(count: int, prefix: str = "t") -> list[BatchRequest]:
    return [
        BatchRequest(id=f"{prefix}{i}", messages=[{"role": "user", "content": f"Classify ticket {i}"}])
        for i in range(count)
    ]


@pytest.fixture
def sqs(aws_endpoint: str, aws_credentials: None) -> object:
    return boto3.client("sqs", endpoint_url=aws_endpoint)


async def _queue(sqs: object, postgres_url: str, visibility_timeout_s: float) -> AsyncIterator[SqsWorkQueue]:
    queue = SqsWorkQueue.create(
        sqs,
        f"tickets-{uuid.uuid4().hex[:8]}",
        ledger_url=postgres_url,
        max_attempts=2,
        visibility_timeout_s=visibility_timeout_s,
    )
    await queue.initialize()
    yield queue
    await queue.close()


@pytest.fixture
async def sqs_queue(sqs: object, postgres_url: str) -> AsyncIterator[SqsWorkQueue]:
    """Leases of 1 s, so the tests of expiring leases and redrives run quickly."""
    async for queue in _queue(sqs, postgres_url, visibility_timeout_s=1):
        yield queue


@pytest.fixture
async def worked_queue(sqs: object, postgres_url: str) -> AsyncIterator[SqsWorkQueue]:
    """Leases long enough for any call on a loaded machine: with 1 s ones, a worker slower than that sees
    its item delivered again (as SQS should), and the test would count one item answered twice."""
    async for queue in _queue(sqs, postgres_url, visibility_timeout_s=60):
        yield queue


async def test_workers_answer_every_item_through_sqs(
    emulator: EmulatorProcess, worked_queue: SqsWorkQueue
) -> None:
    sqs_queue = worked_queue
    provider = make_realtime_provider(
        "openai", model="gpt-4o-mini", base_url=emulator.openai_base_url, api_key="sk-test"
    )
    bad = BatchRequest(id="bad", messages=[{"role": "user", "content": "[[emulator:invalid_request]] x"}])
    assert await sqs_queue.enqueue([*_tickets(30), bad]) == 31
    assert await sqs_queue.enqueue(_tickets(30)) == 0  # already enqueued: nothing sent twice

    summary = await process_realtime(
        None,
        provider_client=provider,
        limiter=None,
        queue=sqs_queue,
        concurrency=8,  # type: ignore[arg-type]
    )
    await provider.aclose()

    assert (summary.answered, summary.dead_lettered) == (30, 1)
    counts = await sqs_queue.counts()
    assert (counts.pending, counts.leased, counts.done, counts.dead) == (0, 0, 30, 1)
    results = {result.id: result for result in await sqs_queue.results()}
    assert len(results) == 31 and all(results[f"t{i}"].ok for i in range(30))
    [dead] = await sqs_queue.dead_letters()
    assert dead.item_id == "bad" and dead.error_type == "invalid_request"


async def test_an_item_whose_leases_keep_expiring_is_redriven_to_the_dead_letter_queue(
    sqs_queue: SqsWorkQueue,
) -> None:
    await sqs_queue.enqueue(_tickets(1))
    received = 0
    with anyio.move_on_after(15):
        while not await sqs_queue.dead_letters():
            received += len(await sqs_queue.lease("dying-worker", limit=1))  # never finished
            await anyio.sleep(0.2)
    [dead] = await sqs_queue.dead_letters()
    assert dead.item_id == "t0" and dead.error_type == "lease_expired"
    assert received == 2  # max_attempts deliveries, then SQS's redrive policy moved it
    assert (await sqs_queue.counts()).open == 0


async def test_a_retry_comes_back_after_its_delay_and_a_release_at_once(sqs_queue: SqsWorkQueue) -> None:
    await sqs_queue.enqueue(_tickets(1))
    [lease] = await sqs_queue.lease("w")
    failure = BatchResult("t0", error="overloaded", error_type="overloaded", retryable=True)
    assert await sqs_queue.finish([Outcome(lease, failure, "retry", delay_s=0)]) == ["pending"]
    again = []
    with anyio.move_on_after(5):
        while True:
            again = await sqs_queue.lease("w")
            if again:
                break
            await anyio.sleep(0.1)
    assert [lease.attempt for lease in again] == [2]
    await sqs_queue.complete(again[0], BatchResult("t0", response="ok"))
    assert [result.response for result in await sqs_queue.results()] == ["ok"]


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    (tmp_path / "dagster_home").mkdir()
    with dg.DagsterInstance.local_temp(tempdir=str(tmp_path / "dagster_home")) as local:
        yield local


async def test_the_scaling_sensor_follows_queue_depth_up_to_the_ceiling_and_back_to_zero(
    sqs_queue: SqsWorkQueue, instance: dg.DagsterInstance
) -> None:
    @dg.op
    def drain() -> None: ...

    @dg.job
    def realtime_worker() -> None:
        drain()

    depth = lambda: anyio.from_thread.run(sqs_queue.depth)  # noqa: E731 (the sensor reads it synchronously)
    sensor = build_worker_scaling_sensor(
        pool="tickets", worker_job=realtime_worker, queue_depth=depth, max_workers=3, items_per_worker=10
    )

    def tick(cursor: str | None) -> dg.SensorResult | dg.SkipReason:
        with dg.build_sensor_context(instance=instance, cursor=cursor) as context:
            return sensor(context)  # type: ignore[no-any-return]

    async def evaluate(cursor: str | None) -> dg.SensorResult | dg.SkipReason:
        return await anyio.to_thread.run_sync(tick, cursor)

    assert isinstance(await evaluate(None), dg.SkipReason)  # empty queue: no workers

    await sqs_queue.enqueue(_tickets(45))
    result = await evaluate(None)
    assert isinstance(result, dg.SensorResult)
    requests = result.run_requests or []
    assert len(requests) == 3  # ceil(45 / 10) = 5, capped at 3
    assert {request.tags[WORKER_POOL_TAG] for request in requests} == {"tickets"}

    runs = [
        instance.create_run_for_job(
            realtime_worker, tags=dict(request.tags), status=dg.DagsterRunStatus.STARTED
        )
        for request in requests
    ]
    assert isinstance(await evaluate(result.cursor), dg.SkipReason)  # at the ceiling

    instance.report_run_failed(runs[0])  # one worker died: the next tick replaces it
    replacement = await evaluate(result.cursor)
    assert isinstance(replacement, dg.SensorResult) and len(replacement.run_requests or []) == 1
    assert {r.run_key for r in replacement.run_requests or []}.isdisjoint({r.run_key for r in requests})

    while leases := await sqs_queue.lease("worker", limit=10):  # the workers drain the queue
        for lease in leases:
            await sqs_queue.complete(lease, BatchResult(lease.item_id, response="ok"))
    for run in runs[1:]:
        instance.report_run_failed(run)
    assert isinstance(await evaluate(replacement.cursor), dg.SkipReason)  # drained: back to zero


async def test_a_worker_run_drains_the_queue_through_the_shared_limiter(
    emulator: EmulatorProcess, sqs: object, sqs_queue: SqsWorkQueue, redis_url: str
) -> None:
    def open_queue() -> SqsWorkQueue:
        return SqsWorkQueue(
            sqs_queue.queue_url,
            ledger_url=sqs_queue.ledger_url,
            dead_letter_queue_url=sqs_queue.dead_letter_queue_url,
            client=sqs,
        )

    worker = build_realtime_worker_job(
        pool="tickets", provider="openai", model="gpt-4o-mini", open_queue=open_queue
    )
    assert worker.tags[WORKER_POOL_TAG] == "tickets"
    await sqs_queue.enqueue(_tickets(20))
    resources = {
        "batch_engine": BatchEngineResource(
            api_key=key_from_environment("BATCH_PIPELINES_TEST_API_KEY", "sk-test"),
            base_url=emulator.openai_base_url,
        ),
        "rate_limiter": RateLimiterResource(
            url=redis_url, requests_per_minute=6_000, tokens_per_minute=1_000_000
        ),
    }
    result = await anyio.to_thread.run_sync(lambda: worker.execute_in_process(resources=resources))
    assert result.success
    counts = await sqs_queue.counts()
    assert (counts.open, counts.done) == (0, 20)
    assert emulator.stats()["requests_by_endpoint"]["chat.completions"] == 20
