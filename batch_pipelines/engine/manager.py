"""BatchManager: submit a job, follow it, collect its results, cancel it, retry what failed transiently.

Everything the manager learns goes to the BatchStore first, so any process holding the same store can
pick a job up. Provider batches are recorded as intents before they are created and tagged with the job
id, attempt and chunk; a launch interrupted by a crash is found again at the provider instead of being
created twice.
"""

from __future__ import annotations

import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from batch_pipelines.engine import preparation
from batch_pipelines.engine.batch_files import BatchFileArchive
from batch_pipelines.engine.collecting import ResultCollector
from batch_pipelines.engine.errors import (
    BatchNotFoundError,
    BudgetExceededError,
    DuplicateRequestIdError,
    JobNotFinishedError,
    JobNotFoundError,
    ProviderError,
)
from batch_pipelines.engine.forecast import ForecastTally, read_history
from batch_pipelines.engine.launching import BatchLauncher, apply_state, intent, mark_lost
from batch_pipelines.engine.models import BatchJob, BatchRequest, BatchResult, BatchStatus, RequestKind
from batch_pipelines.engine.records import QUEUED, JobRecord
from batch_pipelines.engine.results import check_response_schema
from batch_pipelines.engine.splitting import Chunk, ChunkSplitter
from batch_pipelines.engine.store import BatchStore, RequestRow
from batch_pipelines.scratch import scratch_folder
from batch_pipelines.wire.provider import BatchProvider, ProviderBatchState

logger = logging.getLogger(__name__)

STORE_PAGE = 2000
JOB_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
MAX_METADATA_PAIRS = 16


class BatchManager:
    """Runs batch jobs on one provider, recording them in ``store`` (in memory when omitted).

    ``work_dir`` is where rendered input files are written while they upload (the system temp by default).
    Of several managers submitting one job id at once, one prepares it and the others wait for it; a
    preparation silent for ``prepare_lease_s`` is taken over by the next submit. With an ``archive``, each
    provider batch's input and output file is kept there too (see engine.batch_files).
    """

    def __init__(
        self,
        provider: BatchProvider,
        store: BatchStore | None = None,
        *,
        work_dir: Path | None = None,
        prepare_lease_s: float = preparation.PREPARE_LEASE_S,
        archive: BatchFileArchive | None = None,
    ) -> None:
        self.provider = provider
        self.store = store if store is not None else BatchStore()
        self.work_dir = work_dir
        self.prepare_lease_s = prepare_lease_s
        self._launcher = BatchLauncher(provider, self.store, work_dir, archive)
        self._collector = ResultCollector(provider, self.store, archive)

    # -- submit ----------------------------------------------------------------------------------------

    async def submit(
        self,
        requests: Iterable[BatchRequest],
        *,
        job_id: str | None = None,
        metadata: dict[str, str] | None = None,
        response_schema: dict[str, Any] | None = None,
        max_cost_usd: float | None = None,
        budget_note: str = "",
    ) -> BatchJob:
        """Split ``requests`` into provider batches and create them; returns without waiting.

        With a ``job_id`` already submitted, returns that job (finishing any launch a crash interrupted)
        and creates nothing new. ``metadata`` is kept with the job; ``response_schema`` (a JSON schema)
        makes each response parsed and validated into ``BatchResult.parsed``. With ``max_cost_usd``, a job
        whose worst case (prompts counted, every answer at ``max_tokens``, at the batch price; see
        engine.forecast) exceeds it — or cannot be priced — raises BudgetExceededError before anything is
        uploaded and leaves no trace in the store; ``budget_note`` is added to that message. Raises
        DuplicateRequestIdError naming repeated request ids, ValueError for unusable input.
        """
        await self.store.initialize()
        job_id = job_id or f"job-{uuid.uuid4().hex}"
        if not JOB_ID.match(job_id):
            raise ValueError(f"job_id {job_id!r}: use 1-200 letters, digits, '_', '-', '.' or ':'")
        if response_schema is not None:
            check_response_schema(response_schema)
        if max_cost_usd is not None and not (math.isfinite(max_cost_usd) and max_cost_usd >= 0):
            raise ValueError(f"max_cost_usd must be a finite amount of at least 0, got {max_cost_usd!r}")
        record = JobRecord(
            id=job_id,
            provider=self.provider.name,
            model=self.provider.model,
            kind="chat",
            created_at=time.time(),
            price=self.provider.price,
            metadata=_checked_metadata(metadata),
            response_schema=response_schema,
        )
        # An earlier submit that died while preparing is started over; one still preparing is awaited.
        existing = await preparation.claim_or_await(self.store, record, self.prepare_lease_s)
        if existing is not None:
            if (existing.provider, existing.model) != (self.provider.name, self.provider.model):
                raise ValueError(
                    f"job {job_id!r} was submitted to {existing.provider}/{existing.model}, "
                    f"not {self.provider.name}/{self.provider.model}"
                )
            await self._launcher.launch_queued(existing, {})
            return await self._record_status(job_id)
        with scratch_folder(self.work_dir, "batch-") as tmp:
            try:
                tally = ForecastTally(record.provider, record.model, await read_history(self.store, record))
                chunks = await self._prepare(record, requests, tmp, tally)
            except Exception:  # (an interrupted prepare is redone by the next submit of this job id)
                await self.store.discard_unprepared_job(job_id, record.prepare_lease_until)
                raise
            if max_cost_usd is not None and (
                record.estimated_usd is None or record.estimated_usd > max_cost_usd
            ):
                await self.store.discard_unprepared_job(job_id, record.prepare_lease_until)
                raise BudgetExceededError(
                    job_id, record.estimated_usd, max_cost_usd, budget_note, expected_usd=record.expected_usd
                )
            now = time.time()
            await self.store.add_batches([intent(job_id, 1, chunk, now) for chunk in chunks])
            record.detail = QUEUED
            await preparation.finish(self.store, record)
            try:
                await self._launcher.launch_queued(record, {chunk.index: chunk.path for chunk in chunks})
            except ProviderError as error:
                error.add_note(
                    f"job {job_id!r} is recorded: submit again with job_id={job_id!r} to resume it"
                )
                raise
        return await self._record_status(job_id)

    async def _prepare(
        self, record: JobRecord, requests: Iterable[BatchRequest], directory: Path, tally: ForecastTally
    ) -> list[Chunk]:
        """Render, split and record every request; fills in the job's kind, total and cost forecast."""
        schema = record.response_schema
        splitter = ChunkSplitter(
            directory, self.provider.limits, lambda r: self.provider.render_line(r, schema)
        )
        rows: list[RequestRow] = []
        pages = preparation.RequestPages(self.store, record, self.prepare_lease_s)
        kind: RequestKind | None = None
        count = 0
        try:
            for request in requests:
                if kind is None:
                    kind = request.kind
                elif request.kind != kind:
                    raise ValueError(
                        f"request {request.id!r} is a {request.kind} request but job {record.id!r} holds "
                        f"{kind} requests; submit each kind as its own job"
                    )
                if pages.repeated_ids:
                    continue  # keep reading only to name every repeated id
                placement = splitter.add(request)
                tally.add(request, placement.est_tokens)
                rows.append((request.id, count, 1, placement.chunk, placement.line, request.to_json()))
                count += 1
                if len(rows) >= STORE_PAGE:
                    await pages.put(rows)
                    rows = []
            await pages.put(rows)
        finally:
            await pages.flush()
        if pages.repeated_ids:
            raise DuplicateRequestIdError(pages.repeated_ids)
        if count == 0:
            raise ValueError("submit() needs at least one request")
        record.kind = kind or "chat"
        record.total = count
        forecast = tally.forecast(record.price)
        record.estimated_usd = forecast.worst_case_usd
        record.expected_usd = forecast.expected_usd
        record.forecast_basis = forecast.basis
        record.counted_input_tokens = forecast.counted_input_tokens
        return splitter.finish()

    # -- follow ----------------------------------------------------------------------------------------

    async def get_job(self, job_id: str) -> BatchJob:
        """The job as recorded in the store; no provider call."""
        await self.store.initialize()
        return await self.store.get_job(job_id)

    async def refresh(self, job_id: str) -> BatchJob:
        """Poll each unfinished provider batch once, launch queued ones the token pool now allows, and
        record the result."""
        record = await self._record(job_id)
        for batch in await self.store.get_batches(job_id):
            if batch.provider_batch_id and not batch.ended:
                try:
                    apply_state(batch, await self.provider.get_batch(batch.provider_batch_id))
                except BatchNotFoundError as error:
                    mark_lost(batch, error)
                await self.store.save_batch(batch)
        await self._launcher.launch_queued(record, {})
        return await self._record_status(job_id)

    async def get_status(self, job_id: str) -> BatchStatus:
        """The job's status after polling the provider (see ``refresh``)."""
        return (await self.refresh(job_id)).status

    async def cancel(self, job_id: str) -> BatchJob:
        """Cancel every unfinished provider batch. The job answers CANCELLED from now on (``detail`` says
        ``cancelling`` until the provider is done); results that finished before still get collected."""
        record = await self._record(job_id)
        await self.store.update_job(job_id, cancel_requested=True)
        for batch in await self.store.get_batches(job_id):
            if batch.ended:
                continue
            if batch.provider_batch_id is None:
                batch.raw_status, batch.phase, batch.detail = "cancelled", BatchStatus.CANCELLED, "cancelled"
                batch.ended = True
            else:
                try:
                    apply_state(batch, await self._cancel_provider_batch(batch.provider_batch_id))
                except BatchNotFoundError as error:
                    mark_lost(batch, error)
            await self.store.save_batch(batch)
        logger.info("job %s (%s): cancel requested", job_id, record.provider)
        return await self._record_status(job_id)

    async def _cancel_provider_batch(self, batch_id: str) -> ProviderBatchState:
        try:
            return await self.provider.cancel_batch(batch_id)
        except BatchNotFoundError:
            raise
        except ProviderError:
            # A batch that ended since our last poll cannot be cancelled, and the provider says so with a
            # 4xx; its final state is what we want to record then.
            state = await self.provider.get_batch(batch_id)
            if not state.ended:
                raise
            return state

    # -- results ---------------------------------------------------------------------------------------

    async def iter_results(self, job_id: str) -> AsyncIterator[BatchResult]:
        """One BatchResult per request, in submission order. The first read of an ended job yields each
        provider batch's results as they are collected and stored; later reads stream them from the
        store (collecting any batch that ended since). Raises JobNotFinishedError while the job is
        pending or processing.
        For a cancelled job whose batches are still cancelling, their requests read as retryable
        ``cancelled`` errors until the provider ends them (collected on a later call)."""
        view = await self.refresh(job_id)
        if view.status in (BatchStatus.PENDING, BatchStatus.PROCESSING):
            raise JobNotFinishedError(
                f"job {job_id!r} is {view.status} ({view.detail}); results come once it ends"
            )
        record = await self._record(job_id)
        batch_records = await self.store.get_batches(job_id)
        if batch_records and all(batch.ended and not batch.collected for batch in batch_records):
            # Nothing of the job is stored yet, so its results are exactly what collecting each batch
            # stores now: yield those instead of reading a million rows back. Chunks are filled in
            # submission order and each batch's results come in line order.
            for number, batch in enumerate(batch_records, start=1):
                collected = await self._collector.collect(record, batch)
                if number == len(batch_records):
                    await self._record_status(job_id)
                for answer in collected:
                    yield answer
            return
        await self._collector.collect_ended(record)
        await self._record_status(job_id)
        pages = self.store.result_pages(job_id)
        while (page := await self.store.next_page(pages)) is not None:
            for request_id, result in page:
                yield result if result is not None else _not_run(request_id, record.attempt)

    async def get_results(self, job_id: str) -> list[BatchResult]:
        """Every result of the job (see ``iter_results``)."""
        return [result async for result in self.iter_results(job_id)]

    # -- retry -----------------------------------------------------------------------------------------

    async def retry_failed(self, job_id: str) -> BatchJob:
        """Resubmit, as a new attempt, only the requests whose failure is transient (rate limit, server
        error, overload, timeout, expiry, token limit, cancelled before running). Successes are kept and
        permanent failures are never sent again. Returns the job unchanged when nothing is retryable."""
        view = await self.refresh(job_id)
        if view.status in (BatchStatus.PENDING, BatchStatus.PROCESSING) or view.detail == "cancelling":
            raise JobNotFinishedError(f"job {job_id!r} is {view.status} ({view.detail}); retry once it ends")
        record = await self._record(job_id)
        await self._collector.collect_ended(record)
        if (await self.store.result_counts(job_id)).retryable == 0:
            return await self._record_status(job_id)
        attempt = record.attempt + 1
        schema = record.response_schema
        with scratch_folder(self.work_dir, "batch-") as tmp:
            splitter = ChunkSplitter(
                tmp,
                self.provider.limits,
                lambda r: self.provider.render_line(r, schema),
                prefix=f"attempt{attempt}",
            )
            pages = self.store.retryable_payloads(job_id)
            while (page := await self.store.next_page(pages)) is not None:
                placed = []
                for payload in page:
                    request = BatchRequest.from_json(payload)
                    placement = splitter.add(request)
                    placed.append((request.id, attempt, placement.chunk, placement.line))
                await self.store.place_requests(job_id, placed)
            chunks = splitter.finish()
            now = time.time()
            await self.store.start_attempt(job_id, attempt, [intent(job_id, attempt, c, now) for c in chunks])
            record.attempt, record.cancel_requested = attempt, False
            logger.info(
                "job %s: attempt %d resubmits %d requests",
                job_id,
                attempt,
                sum(c.request_count for c in chunks),
            )
            await self._launcher.launch_queued(record, {chunk.index: chunk.path for chunk in chunks})
        return await self._record_status(job_id)

    # -- helpers ---------------------------------------------------------------------------------------

    async def _record(self, job_id: str) -> JobRecord:
        await self.store.initialize()
        record = await self.store.get_job_record(job_id)
        if record is None:
            raise JobNotFoundError(job_id)
        return record

    async def _record_status(self, job_id: str) -> BatchJob:
        """Store the derived status (for ``list_jobs(open_only=True)``) and return the job."""
        view = await self.store.get_job(job_id)
        record = await self._record(job_id)
        open_ = not view.status.is_terminal or view.detail == "cancelling"
        finished_at = record.finished_at
        if open_:
            finished_at = None
        elif finished_at is None:
            finished_at = time.time()
        if (record.status, record.detail, record.finished_at) != (view.status, view.detail, finished_at):
            await self.store.record_status(view, open_=open_, finished_at=finished_at)
        return view


def _checked_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    metadata = dict(metadata or {})
    if len(metadata) > MAX_METADATA_PAIRS:
        raise ValueError(f"metadata: at most {MAX_METADATA_PAIRS} pairs, got {len(metadata)}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"metadata {key!r}: keys and values must be strings")
    return metadata


def _not_run(request_id: str, attempt: int) -> BatchResult:
    return BatchResult(
        id=request_id,
        error="not finished: the job was cancelled and the provider has not ended this request's batch yet",
        error_type="cancelled",
        retryable=True,
        attempt=attempt,
    )
