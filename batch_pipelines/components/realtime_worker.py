"""A realtime worker as a Dagster job: one run drains a work queue through the realtime path and exits.

`build_worker_scaling_sensor` launches these runs by queue depth; several run at once (on one machine
or many, through the run launcher), all sharing the queue and the `RateLimiterResource` budget.
"""

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

import dagster as dg
from pydantic import Field

from batch_pipelines.components.rate_limiter_resource import RateLimiterResource
from batch_pipelines.components.resources import BatchEngineResource
from batch_pipelines.components.worker_scaling import WORKER_POOL_TAG
from batch_pipelines.engine import BatchStore
from batch_pipelines.engine.spend import SpendLedger, SpendScope
from batch_pipelines.realtime import RealtimeSummary, make_realtime_provider, process_realtime
from batch_pipelines.realtime.queue import QueueCounts


class DrainableQueue(Protocol):
    """What a worker needs of a queue: WorkQueue and SqsWorkQueue both provide it."""

    async def initialize(self) -> None: ...

    async def counts(self) -> QueueCounts: ...

    async def close(self) -> None: ...


class RealtimeWorkerConfig(dg.Config):
    concurrency: int = Field(default=16, ge=1, description="Calls in flight in this worker.")


def build_realtime_worker_job(
    *,
    pool: str,
    provider: str,
    model: str,
    open_queue: Callable[[], DrainableQueue] | None = None,
    open_queue_with: Callable[[BatchEngineResource], DrainableQueue] | None = None,
    concurrency: int | None = None,
) -> dg.JobDefinition:
    """The worker job of ``pool``: ``open_queue()`` gives the queue (e.g. an ``SqsWorkQueue``), or
    ``open_queue_with(batch_engine)`` where it depends on the resource (working folder, store URL); the
    provider endpoint and key come from ``batch_engine``, the budget from ``rate_limiter``. ``concurrency``
    is the default of the run config's calls in flight."""
    open_with: Callable[[BatchEngineResource], DrainableQueue]
    if open_queue is not None and open_queue_with is None:
        plain = open_queue
        open_with = lambda _engine: plain()  # noqa: E731
    elif open_queue_with is not None and open_queue is None:
        open_with = open_queue_with
    else:
        raise ValueError("give exactly one of open_queue and open_queue_with")

    @dg.op(name=f"{pool}_drain_queue")
    def drain(
        context: dg.OpExecutionContext,
        config: RealtimeWorkerConfig,
        batch_engine: BatchEngineResource,
        rate_limiter: RateLimiterResource,
    ) -> None:
        async def work() -> RealtimeSummary:
            queue = open_with(batch_engine)
            await queue.initialize()
            client = make_realtime_provider(
                provider,
                model=model,
                base_url=batch_engine.base_url,
                api_key=batch_engine.provider_key(),
                max_connections=config.concurrency,
            )
            batch_engine.layout().workdir.mkdir(parents=True, exist_ok=True)  # where the store lives
            store = BatchStore(batch_engine.store_location())  # the spend ledger (no partition here)
            scope = SpendScope(pool, None, f"realtime:{pool}:workers", provider, model)
            try:
                await store.initialize()
                return await process_realtime(
                    None,
                    provider_client=client,
                    limiter=rate_limiter.limiter(f"{provider}:{model}"),
                    queue=queue,  # type: ignore[arg-type]  # SqsWorkQueue has WorkQueue's interface
                    concurrency=config.concurrency,
                    worker_id=context.run_id,
                    spend=SpendLedger(store, scope),
                )
            finally:
                await client.aclose()
                await queue.close()
                await store.close()

        summary = asyncio.run(work())
        context.log.info(
            f"answered {summary.answered}, dead-lettered {summary.dead_lettered}, "
            f"{summary.queue.open} item(s) still open in the queue"
        )

    defaults: dict[str, Any] = {}
    if concurrency is not None:
        defaults["config"] = dg.RunConfig(ops={drain.name: RealtimeWorkerConfig(concurrency=concurrency)})

    @dg.job(name=f"{pool}_realtime_worker", tags={WORKER_POOL_TAG: pool}, **defaults)
    def worker() -> None:
        drain()

    return worker
