"""Which of several submitters racing on one job id prepares it.

The submitter whose insert of the job row wins prepares the job under a lease it renews as it stores
requests; the others wait until the job is prepared and then only launch what is still queued (launches
are claimed one by one, see launching.py). A preparer that dies leaves a lease that runs out: the next
submitter discards the half-prepared job and starts it over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from batch_pipelines.engine.records import JobRecord
from batch_pipelines.engine.store import BatchStore, RequestRow

PREPARE_LEASE_S = 60.0


class PreparationLostError(RuntimeError):
    """This submitter's preparation lease ran out and another submitter took the job over."""


class _PreparedElsewhere(Exception):
    pass


async def claim_or_await(store: BatchStore, record: JobRecord, lease_s: float) -> JobRecord | None:
    """None when this caller now holds the job (``record`` is stored with a lease) and must prepare it;
    otherwise the job as another submitter prepared it."""
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(_PreparedElsewhere),
        wait=wait_exponential(multiplier=0.02, max=min(1.0, lease_s / 4)),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            existing = await store.get_job_record(record.id)
            if existing is not None and existing.prepared:
                return existing
            if existing is not None:
                held_until = existing.prepare_lease_until
                if held_until is not None and held_until > time.time():
                    raise _PreparedElsewhere(record.id)
                await store.discard_unprepared_job(record.id, held_until)  # abandoned: start it over
            record.created_at = time.time()
            record.prepare_lease_until = record.created_at + lease_s
            if await store.claim_job(record):
                return None
            raise _PreparedElsewhere(record.id)
    raise AssertionError("tenacity stops only by returning or raising")


async def renew(store: BatchStore, record: JobRecord, lease_s: float) -> None:
    """Extend the caller's lease on the job it is preparing; raises PreparationLostError if lost."""
    until = time.time() + lease_s
    if not await store.renew_preparation(record.id, record.prepare_lease_until, until):
        raise PreparationLostError(f"job {record.id!r}: another submitter took over its preparation")
    record.prepare_lease_until = until


async def finish(store: BatchStore, record: JobRecord) -> None:
    """Store the prepared job and give up the lease, in one compare-and-set."""
    held_until = record.prepare_lease_until
    record.prepared = True
    record.prepare_lease_until = None
    if not await store.finish_preparation(record, held_until):
        raise PreparationLostError(f"job {record.id!r}: another submitter took over its preparation")


class RequestPages:
    """Stores a job's requests a page at a time with one write in flight, so the store's thread writes
    page n while the preparer renders page n+1; each write also renews the preparer's lease."""

    def __init__(self, store: BatchStore, record: JobRecord, lease_s: float) -> None:
        self.store = store
        self.record = record
        self.lease_s = lease_s
        self.repeated_ids: list[str] = []  # ids the store already held for the job (or a page repeated)
        self._pending: asyncio.Future[None] | None = None

    async def put(self, rows: Sequence[RequestRow]) -> None:
        await self.flush()
        self._pending = asyncio.ensure_future(self._write(rows))

    async def flush(self) -> None:
        """Wait for the write in flight; raises what it raised."""
        pending, self._pending = self._pending, None
        if pending is not None:
            await pending

    async def _write(self, rows: Sequence[RequestRow]) -> None:
        self.repeated_ids.extend(await self.store.add_requests(self.record.id, rows))
        await renew(self.store, self.record, self.lease_s)
