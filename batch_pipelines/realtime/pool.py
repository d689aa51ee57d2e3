"""The worker pool: ``concurrency`` tasks call the provider for items leased from the work queue.

A dispatcher leases items for every idle task in one transaction (``LeaseDispatcher``); each task sends
its item (or pack) through the ``RealtimeCaller`` and hands the outcome to the ``ResultWriter``, which
writes results and acks (success), gives items back for a later attempt (a transient failure that
outlived its retries) or dead-letters them (a permanent failure), many per transaction. When nothing is
leasable the dispatcher waits for the queue's next moment (a delayed retry, another worker's lease
expiring) and the run ends once no item is open, so several processes can drain one queue together and
a run started after a crash finishes what the crashed one left.
"""

from __future__ import annotations

import math
import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import anyio

from batch_pipelines.engine.models import BatchRequest, BatchResult
from batch_pipelines.engine.spend import PACKED, REALTIME, CallSpend, SpendSink
from batch_pipelines.providers.realtime import RealtimeProvider
from batch_pipelines.ratelimit import RateLimiter
from batch_pipelines.realtime.caller import RealtimeCaller
from batch_pipelines.realtime.packing import Pack, Packing, Share, plan_packs, unpack
from batch_pipelines.realtime.queue import Lease, Outcome, QueueCounts, QueueItem, WorkQueue
from batch_pipelines.realtime.queue_io import IDLE_POLL_S, LeaseDispatcher, ResultWriter
from batch_pipelines.realtime.queue_tables import DEAD, DONE


@dataclass(frozen=True, slots=True)
class RealtimeSummary:
    """What one ``process_realtime`` call did (this process only) and what the queue holds afterwards.

    ``answered``: results written by this run; ``dead_lettered``: items it moved to the dead-letter table;
    ``requests_sent``: HTTP calls, retries included; ``rate_limited``: 429 answers among them;
    ``packed_calls``/``fallback_calls``: calls carrying a pack, and single calls for items a pack could not
    answer. ``queue``: the queue's counts at the end (``queue.open == 0`` when everything is finished).
    """

    answered: int
    dead_lettered: int
    retried_later: int
    requests_sent: int
    rate_limited: int
    retries: int
    packed_calls: int
    fallback_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    elapsed_s: float
    queue: QueueCounts


def suggested_concurrency(
    requests_per_minute: float, expected_latency_s: float, headroom: float = 1.5
) -> int:
    """Tasks (and pooled connections) needed to keep ``requests_per_minute`` in flight at this latency."""
    return max(1, math.ceil(requests_per_minute / 60 * expected_latency_s * headroom))


async def process_realtime(
    requests: Iterable[BatchRequest | QueueItem] | None,
    *,
    provider_client: RealtimeProvider,
    limiter: RateLimiter | None,
    queue: WorkQueue,
    concurrency: int = 16,
    response_schema: dict[str, Any] | None = None,
    packing: Packing | None = None,
    max_call_attempts: int = 4,
    initial_retry_wait_s: float = 0.5,
    max_retry_wait_s: float = 8.0,
    retry_delay_s: float = 5.0,
    adaptive: bool = True,
    worker_id: str | None = None,
    spend: SpendSink | None = None,
    idle_poll_s: float = IDLE_POLL_S,
) -> RealtimeSummary:
    """Enqueue ``requests`` (None: only resume what the queue holds) and work until no item is open.

    Items already in the queue (same id) are not added twice, and items with a result are never sent
    again. Cancel the call to stop early: leases it holds are handed back.

    Each item gets up to ``max_call_attempts`` sends per delivery (backoff from ``initial_retry_wait_s``
    doubling to ``max_retry_wait_s``, or the server's retry-after); a transient failure that outlives them
    goes back to the queue for another delivery after ``retry_delay_s``, until the queue's
    ``max_attempts``. ``adaptive=False`` ignores the provider's rate-limit headers. With nothing leasable,
    the queue is looked at again after at most ``idle_poll_s`` (other processes' progress, leases
    expiring) and whenever this process finishes items.

    ``spend`` receives every paid call (a pack counts once, with its items), in groups, each group before
    the results its calls produced are written (engine/spend.py): so the ledger never misses a paid call
    whose answer is kept. Results carry ``path`` (``realtime`` or ``packed``); a packed item's tokens and
    cost are its share of the pack's, and an item a pack could not answer bears its share on top of its
    own call's.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    await queue.initialize()
    if requests is not None:
        await queue.enqueue(requests)
    caller = RealtimeCaller(
        provider_client,
        limiter,
        max_attempts=max_call_attempts,
        initial_wait_s=initial_retry_wait_s,
        max_wait_s=max_retry_wait_s,
        adaptive=adaptive,
    )
    run = _Run(
        caller=caller,
        queue=queue,
        response_schema=response_schema,
        packing=packing,
        retry_delay_s=retry_delay_s,
        idle_poll_s=idle_poll_s,
        concurrency=concurrency,
        owner=worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        spend=spend,
    )
    started = time.monotonic()
    async with anyio.create_task_group() as writing:
        writing.start_soon(run.writer.run)
        async with anyio.create_task_group() as working:
            working.start_soon(run.dispatcher.run)
            for _ in range(concurrency):
                working.start_soon(run.work)
        run.writer.close()
    counters = caller.counters
    return RealtimeSummary(
        answered=run.writer.states[DONE],
        dead_lettered=run.writer.states[DEAD],
        retried_later=run.writer.states.total() - run.writer.states[DONE] - run.writer.states[DEAD],
        requests_sent=counters.requests_sent,
        rate_limited=counters.rate_limited,
        retries=counters.retries,
        packed_calls=run.packed_calls,
        fallback_calls=run.fallback_calls,
        input_tokens=counters.input_tokens,
        output_tokens=counters.output_tokens,
        cost_usd=counters.cost_usd,
        elapsed_s=time.monotonic() - started,
        queue=await queue.counts(),
    )


class _Run:
    def __init__(
        self,
        *,
        caller: RealtimeCaller,
        queue: WorkQueue,
        response_schema: dict[str, Any] | None,
        packing: Packing | None,
        retry_delay_s: float,
        idle_poll_s: float,
        concurrency: int,
        owner: str,
        spend: SpendSink | None,
    ) -> None:
        self.caller = caller
        self.queue = queue
        self.response_schema = response_schema
        self.packing = packing
        self.retry_delay_s = retry_delay_s
        self.writer = ResultWriter(queue, spend)
        self.dispatcher = LeaseDispatcher(
            queue,
            owner,
            packing.items_per_prompt if packing is not None else 1,
            self.writer,
            ahead=concurrency,
            poll_s=idle_poll_s,
        )
        self.packed_calls = 0
        self.fallback_calls = 0

    async def work(self) -> None:
        while (leases := await self.dispatcher.next()) is not None:
            pending = {lease.item_id: lease for lease in leases}
            try:
                await self._process(pending)
            finally:
                if pending:  # cancelled part-way: hand back what was not finished
                    with anyio.CancelScope(shield=True):
                        await self.queue.release(pending.values())

    async def _process(self, pending: dict[str, Lease]) -> None:
        # An item delivered again (its pack failed, or its worker died) goes alone: it may be the cause.
        first_tries = [lease.request for lease in pending.values() if lease.attempt == 1]
        singles = [lease.request for lease in pending.values() if lease.attempt > 1]
        packs: list[Pack] = []
        if self.packing is not None and len(first_tries) > 1:
            packs, first_tries = plan_packs(
                first_tries, self.packing, self.response_schema, self.caller.provider.estimate_tokens
            )
        for pack in packs:
            await self._send_pack(pending, pack)
        for request in [*first_tries, *singles]:
            await self._call_one(pending, request)

    async def _send_pack(self, pending: dict[str, Lease], pack: Pack) -> None:
        self.packed_calls += 1
        attempt = max(pending[item.id].attempt for item in pack.items)
        priority = max(pending[item.id].priority for item in pack.items)
        packed = await self.caller.call(pack.request, pack.schema, attempt=attempt, priority=priority)
        self._paid(PACKED, len(pack.items), packed)
        if packed.error is not None and packed.retryable:
            # The provider is struggling (outlived the retries): single calls now would only add load.
            for item in pack.items:
                await self._finish(pending, _failure_for(item, packed, pending[item.id].attempt))
            return
        unpacked = unpack(pack, packed, self.response_schema)
        for result in unpacked.answered:
            result.attempt = pending[result.id].attempt
            await self._finish(pending, result)
        self.fallback_calls += len(unpacked.fallback)
        for request in unpacked.fallback:
            await self._call_one(pending, request, unpacked.carried.get(request.id))

    async def _call_one(
        self, pending: dict[str, Lease], request: BatchRequest, carried: Share | None = None
    ) -> None:
        lease = pending[request.id]
        result = await self.caller.call(
            request, self.response_schema, attempt=lease.attempt, priority=lease.priority
        )
        self._paid(REALTIME, 1, result)
        result.path = REALTIME
        if carried is not None:
            _bear(result, carried)
        await self._finish(pending, result)

    def _paid(self, path: str, items: int, result: BatchResult) -> None:
        """Note a call's spend for the ledger when the provider reported usage (it billed the call)."""
        if result.input_tokens or result.output_tokens:
            self.writer.note_spend(
                CallSpend(path, items, result.input_tokens, result.output_tokens, result.cost_usd)
            )

    async def _finish(self, pending: dict[str, Lease], result: BatchResult) -> None:
        lease = pending.pop(result.id)  # from here on the writer owns it, even if this task is cancelled
        if result.error is None:
            disposition: Literal["done", "retry", "dead"] = "done"
        else:
            disposition = "retry" if result.retryable else "dead"
        self.writer.put(Outcome(lease, result, disposition, self.retry_delay_s))


def _bear(result: BatchResult, share: Share) -> None:
    """Add an item's share of the pack that could not answer it to the result of its own call."""
    result.input_tokens += share.input_tokens
    result.output_tokens += share.output_tokens
    if share.cost_usd is not None:
        result.cost_usd = (result.cost_usd or 0.0) + share.cost_usd


def _failure_for(request: BatchRequest, packed: BatchResult, attempt: int) -> BatchResult:
    """An item's share of its pack's transient failure."""
    return BatchResult(
        request.id, error=packed.error, error_type=packed.error_type, retryable=True, attempt=attempt
    )
