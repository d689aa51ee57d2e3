"""BatchManager: submit a job, follow it, collect its results, cancel it, retry what failed transiently.

Everything the manager learns goes to the BatchStore first, so any process holding the same store can
pick a job up. Provider batches are recorded as intents before they are created and tagged with the job
id, attempt and chunk; a launch interrupted by a crash is found again at the provider instead of being
created twice.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from batch_pipelines.engine.errors import (
    DuplicateRequestIdError,
    JobNotFinishedError,
    JobNotFoundError,
    ProviderError,
    classify,
)
from batch_pipelines.engine.models import BatchJob, BatchRequest, BatchResult, BatchStatus, RequestKind
from batch_pipelines.engine.pricing import DEFAULT_OUTPUT_TOKENS
from batch_pipelines.engine.records import QUEUED, BatchRecord, JobRecord
from batch_pipelines.engine.results import ResultFinisher, check_response_schema
from batch_pipelines.engine.splitting import Chunk, ChunkSplitter
from batch_pipelines.engine.store import BatchStore
from batch_pipelines.providers.base import BatchProvider, ProviderBatchState

logger = logging.getLogger(__name__)

T = TypeVar("T")
STORE_PAGE = 2000
JOB_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
MAX_METADATA_PAIRS = 16
WAITING_FOR_BUDGET = "queued: waiting for the enqueued-token budget"
# Errors at batch creation that condemn this batch's content only (recorded as its failure, not raised).
BATCH_CONTENT_ERRORS = frozenset({"invalid_request", "request_too_large"})


class BatchManager:
    """Runs batch jobs on one provider, recording them in ``store`` (in memory when omitted).

    ``work_dir`` is where rendered input files are written while they upload (the system temp by default).
    """

    def __init__(
        self, provider: BatchProvider, store: BatchStore | None = None, *, work_dir: Path | None = None
    ):
        self.provider = provider
        self.store = store if store is not None else BatchStore()
        self.work_dir = work_dir

    # -- submit ----------------------------------------------------------------------------------------

    async def submit(
        self,
        requests: Iterable[BatchRequest],
        *,
        job_id: str | None = None,
        metadata: dict[str, str] | None = None,
        response_schema: dict[str, Any] | None = None,
    ) -> BatchJob:
        """Split ``requests`` into provider batches and create them; returns without waiting.

        With a ``job_id`` already submitted, returns that job (finishing any launch a crash interrupted)
        and creates nothing new. ``metadata`` is kept with the job; ``response_schema`` (a JSON schema)
        makes each response parsed and validated into ``BatchResult.parsed``. Raises
        DuplicateRequestIdError naming repeated request ids, ValueError for unusable input.
        """
        await self.store.initialize()
        job_id = job_id or f"job-{uuid.uuid4().hex}"
        if not JOB_ID.match(job_id):
            raise ValueError(f"job_id {job_id!r}: use 1-200 letters, digits, '_', '-', '.' or ':'")
        existing = await self.store.get_job_record(job_id)
        if existing is not None and existing.prepared:
            if (existing.provider, existing.model) != (self.provider.name, self.provider.model):
                raise ValueError(
                    f"job {job_id!r} was submitted to {existing.provider}/{existing.model}, "
                    f"not {self.provider.name}/{self.provider.model}"
                )
            await self._launch_queued(existing, {})
            return await self._record_status(job_id)
        if existing is not None:  # an earlier submit died while preparing: start that over
            await self.store.discard_job(job_id)
        if response_schema is not None:
            check_response_schema(response_schema)
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
        await self.store.save_job(record)
        with tempfile.TemporaryDirectory(prefix="batch-", dir=self.work_dir) as tmp:
            try:
                chunks = await self._prepare(record, requests, Path(tmp))
            except BaseException:
                await self.store.discard_job(job_id)
                raise
            now = time.time()
            await self.store.add_batches([_intent(job_id, 1, chunk, now) for chunk in chunks])
            record.prepared = True
            record.detail = QUEUED
            await self.store.save_job(record)
            try:
                await self._launch_queued(record, {chunk.index: chunk.path for chunk in chunks})
            except ProviderError as error:
                error.add_note(
                    f"job {job_id!r} is recorded: submit again with job_id={job_id!r} to resume it"
                )
                raise
        return await self._record_status(job_id)

    async def _prepare(
        self, record: JobRecord, requests: Iterable[BatchRequest], directory: Path
    ) -> list[Chunk]:
        """Render, split and record every request; fills in the job's kind, total and cost estimate."""
        schema = record.response_schema
        splitter = ChunkSplitter(
            directory, self.provider.limits, lambda r: self.provider.render_line(r, schema)
        )
        seen: set[str] = set()
        duplicates: list[str] = []
        rows: list[tuple[str, int, int, int, int, str]] = []
        kind: RequestKind | None = None
        input_tokens = output_tokens = count = 0
        for request in requests:
            if request.id in seen:
                duplicates.append(request.id)
                continue
            seen.add(request.id)
            if kind is None:
                kind = request.kind
            elif request.kind != kind:
                raise ValueError(
                    f"request {request.id!r} is a {request.kind} request but job {record.id!r} holds {kind} "
                    "requests; submit each kind as its own job"
                )
            if duplicates:
                continue  # keep reading only to name every duplicate
            placement = splitter.add(request)
            input_tokens += placement.est_tokens
            if request.kind == "chat":
                output_tokens += request.max_tokens or DEFAULT_OUTPUT_TOKENS
            rows.append((request.id, count, 1, placement.chunk, placement.line, request.to_json()))
            count += 1
            if len(rows) >= STORE_PAGE:
                await self.store.add_requests(record.id, rows)
                rows = []
        if duplicates:
            raise DuplicateRequestIdError(duplicates)
        if count == 0:
            raise ValueError("submit() needs at least one request")
        await self.store.add_requests(record.id, rows)
        record.kind = kind or "chat"
        record.total = count
        if record.price is not None:
            record.estimated_usd = record.price.cost(input_tokens, output_tokens, batch=True)
        return splitter.finish()

    async def _launch_queued(self, record: JobRecord, files: dict[int, Path]) -> None:
        """Create the provider batches recorded as intents, as far as the enqueued-token pool allows."""
        if record.cancel_requested:
            return
        batch_records = await self.store.get_batches(record.id)
        known = {b.provider_batch_id for b in batch_records if b.provider_batch_id}
        queued = [b for b in batch_records if b.raw_status == QUEUED and not b.ended]
        if not queued:
            return
        pool = self.provider.limits.max_enqueued_tokens
        with tempfile.TemporaryDirectory(prefix="batch-", dir=self.work_dir) as tmp:
            for batch in queued:
                if pool is not None:
                    enqueued = await self.store.enqueued_tokens(self.provider.name, self.provider.model)
                    if enqueued and enqueued + batch.est_tokens > pool:
                        batch.detail = WAITING_FOR_BUDGET
                        await self.store.save_batch(batch)
                        return
                state = await self._find_launched(batch, known)
                if state is None:
                    started = time.time()
                    if not await self.store.claim_launch(batch, started):
                        continue  # another process is launching this batch right now
                    batch.launch_started_at = started
                    path = files.get(batch.chunk) or await self._render_chunk(record, batch, Path(tmp))
                    try:
                        state = await self.provider.create_batch(path, kind=record.kind, tags=batch.tags)
                    except ProviderError as error:
                        if error.error_type in BATCH_CONTENT_ERRORS:  # this batch is bad; others may be fine
                            _mark_rejected(batch, error)
                            await self.store.save_batch(batch)
                            continue
                        # Pool full, provider down, or a key/account problem: the intent stays queued so
                        # a later refresh (or re-running submit) launches it.
                        batch.detail = f"queued: {error.error_type}"
                        await self.store.save_batch(batch)
                        if error.error_type == "token_limit_exceeded":
                            return
                        raise
                _apply(batch, state)
                known.add(state.id)
                await self.store.save_batch(batch)

    async def _find_launched(self, batch: BatchRecord, known: set[str]) -> ProviderBatchState | None:
        if batch.launch_started_at is None:
            return None
        found = await self.provider.find_batch(
            batch.tags,
            created_after=batch.launch_started_at,
            request_count=batch.request_count,
            exclude=known,
        )
        if found is not None:
            logger.info("job %s: adopting provider batch %s created before a restart", batch.job_id, found.id)
        return found

    async def _render_chunk(self, record: JobRecord, batch: BatchRecord, directory: Path) -> Path:
        """Rebuild a batch's input file from the stored requests (after a restart or for a retry)."""
        path = directory / f"attempt{batch.attempt}-chunk{batch.chunk:05d}.jsonl"
        pages = self.store.chunk_payloads(record.id, batch.attempt, batch.chunk)
        with path.open("wb") as handle:
            while (page := await self.store.run_sync(_next_page, pages)) is not None:
                for payload in page:
                    handle.write(
                        self.provider.render_line(BatchRequest.from_json(payload), record.response_schema)
                    )
        return path

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
                _apply(batch, await self.provider.get_batch(batch.provider_batch_id))
                await self.store.save_batch(batch)
        await self._launch_queued(record, {})
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
                _apply(batch, await self.provider.cancel_batch(batch.provider_batch_id))
            await self.store.save_batch(batch)
        logger.info("job %s (%s): cancel requested", job_id, record.provider)
        return await self._record_status(job_id)

    # -- results ---------------------------------------------------------------------------------------

    async def iter_results(self, job_id: str) -> AsyncIterator[BatchResult]:
        """One BatchResult per request, in submission order, streamed from the store after collecting
        every ended provider batch. Raises JobNotFinishedError while the job is pending or processing.
        For a cancelled job whose batches are still cancelling, their requests read as retryable
        ``cancelled`` errors until the provider ends them (collected on a later call)."""
        view = await self.refresh(job_id)
        if view.status in (BatchStatus.PENDING, BatchStatus.PROCESSING):
            raise JobNotFinishedError(
                f"job {job_id!r} is {view.status} ({view.detail}); results come once it ends"
            )
        record = await self._record(job_id)
        await self._collect_ended(record)
        await self._record_status(job_id)
        pages = self.store.result_pages(job_id)
        while (page := await self.store.run_sync(_next_page, pages)) is not None:
            for request_id, result in page:
                yield result if result is not None else _not_run(request_id, record.attempt)

    async def get_results(self, job_id: str) -> list[BatchResult]:
        """Every result of the job (see ``iter_results``)."""
        return [result async for result in self.iter_results(job_id)]

    async def _collect_ended(self, record: JobRecord) -> None:
        for batch in await self.store.get_batches(record.id):
            if batch.ended and not batch.collected:
                await self._collect(record, batch)

    async def _collect(self, record: JobRecord, batch: BatchRecord) -> None:
        """Store a finished batch's results, joined on custom_id, plus one error for each request the
        provider returned nothing for (expired, cancelled, failed batch)."""
        finisher = ResultFinisher(
            price=record.price,
            response_schema=record.response_schema,
            attempt=batch.attempt,
            provider_batch_id=batch.provider_batch_id,
        )
        if batch.provider_batch_id is not None:
            members = await self.store.chunk_request_ids(record.id, batch.attempt, batch.chunk)
            buffer: list[BatchResult] = []
            async for line in self.provider.iter_result_lines(batch.provider_batch_id):
                try:
                    parsed = self.provider.parse_result_line(line)
                except (ValueError, KeyError, TypeError, IndexError) as error:
                    logger.warning(
                        "batch %s: skipping unreadable result line (%s)", batch.provider_batch_id, error
                    )
                    continue
                if parsed.id not in members:
                    logger.warning("batch %s: result for unknown id %r", batch.provider_batch_id, parsed.id)
                    continue
                buffer.append(finisher.finish(parsed))
                if len(buffer) >= STORE_PAGE:
                    await self.store.upsert_results(record.id, buffer)
                    buffer = []
            await self.store.upsert_results(record.id, buffer)
        missing = await self.store.unresolved_in_chunk(record.id, batch.attempt, batch.chunk)
        for start in range(0, len(missing), STORE_PAGE):
            page = missing[start : start + STORE_PAGE]
            await self.store.upsert_results(record.id, [_unreturned(batch, rid, line) for rid, line in page])
        batch.collected = True
        await self.store.save_batch(batch)

    # -- retry -----------------------------------------------------------------------------------------

    async def retry_failed(self, job_id: str) -> BatchJob:
        """Resubmit, as a new attempt, only the requests whose failure is transient (rate limit, server
        error, overload, timeout, expiry, token limit, cancelled before running). Successes are kept and
        permanent failures are never sent again. Returns the job unchanged when nothing is retryable."""
        view = await self.refresh(job_id)
        if view.status in (BatchStatus.PENDING, BatchStatus.PROCESSING) or view.detail == "cancelling":
            raise JobNotFinishedError(f"job {job_id!r} is {view.status} ({view.detail}); retry once it ends")
        record = await self._record(job_id)
        await self._collect_ended(record)
        if (await self.store.result_counts(job_id)).retryable == 0:
            return await self._record_status(job_id)
        attempt = record.attempt + 1
        schema = record.response_schema
        with tempfile.TemporaryDirectory(prefix="batch-", dir=self.work_dir) as tmp:
            splitter = ChunkSplitter(
                Path(tmp),
                self.provider.limits,
                lambda r: self.provider.render_line(r, schema),
                prefix=f"attempt{attempt}",
            )
            pages = self.store.retryable_payloads(job_id)
            while (page := await self.store.run_sync(_next_page, pages)) is not None:
                placed = []
                for payload in page:
                    request = BatchRequest.from_json(payload)
                    placement = splitter.add(request)
                    placed.append((request.id, attempt, placement.chunk, placement.line))
                await self.store.place_requests(job_id, placed)
            chunks = splitter.finish()
            now = time.time()
            await self.store.start_attempt(
                job_id, attempt, [_intent(job_id, attempt, c, now) for c in chunks]
            )
            record.attempt, record.cancel_requested = attempt, False
            logger.info(
                "job %s: attempt %d resubmits %d requests",
                job_id,
                attempt,
                sum(c.request_count for c in chunks),
            )
            await self._launch_queued(record, {chunk.index: chunk.path for chunk in chunks})
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
            await self.store.update_job(
                job_id, status=view.status.value, detail=view.detail, open=open_, finished_at=finished_at
            )
        return view


def _next_page(pages: Iterator[T]) -> T | None:
    return next(pages, None)


def _checked_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    metadata = dict(metadata or {})
    if len(metadata) > MAX_METADATA_PAIRS:
        raise ValueError(f"metadata: at most {MAX_METADATA_PAIRS} pairs, got {len(metadata)}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"metadata {key!r}: keys and values must be strings")
    return metadata


def _intent(job_id: str, attempt: int, chunk: Chunk, now: float) -> BatchRecord:
    return BatchRecord(
        job_id=job_id,
        attempt=attempt,
        chunk=chunk.index,
        request_count=chunk.request_count,
        byte_count=chunk.byte_count,
        est_tokens=chunk.est_tokens,
        recorded_at=now,
    )


def _apply(batch: BatchRecord, state: ProviderBatchState) -> None:
    batch.provider_batch_id = state.id
    batch.raw_status = state.raw_status
    batch.phase = state.phase
    batch.detail = state.detail
    batch.ended = state.ended
    batch.completed = state.completed
    batch.failed = state.failed
    batch.input_tokens = state.input_tokens
    batch.output_tokens = state.output_tokens
    batch.error_code = state.error_code
    batch.error_message = state.error_message
    batch.line_errors = list(state.line_errors)


def _mark_rejected(batch: BatchRecord, error: ProviderError) -> None:
    batch.raw_status = "rejected"
    batch.phase = BatchStatus.FAILED
    batch.detail = f"rejected: {error.error_type}"
    batch.ended = True
    batch.error_code = error.error_type
    batch.error_message = str(error.args[0])


def _unreturned(batch: BatchRecord, request_id: str, line: int) -> BatchResult:
    """The result of a request the provider returned nothing for, explained by the batch's fate."""
    line_error = next((e for e in batch.line_errors if e.line == line), None)
    if line_error is not None:
        error_type, retryable = classify(line_error.code, line_error.message)
        message = line_error.message
    elif batch.detail == "expired" or batch.raw_status == "expired":
        error_type, retryable = "batch_expired", True
        message = "the batch expired before this request ran"
    elif batch.phase == BatchStatus.CANCELLED:
        error_type, retryable = "cancelled", True
        message = "the batch was cancelled before this request ran"
    elif batch.phase == BatchStatus.FAILED and batch.line_errors:
        error_type, retryable = "batch_failed", True
        message = f"the provider rejected the batch because of other lines: {batch.line_errors[0].message}"
    elif batch.phase == BatchStatus.FAILED:
        message = batch.error_message or f"the provider batch failed ({batch.error_code or batch.raw_status})"
        error_type, retryable = classify(batch.error_code, message)
        if error_type == "unknown":
            error_type, retryable = "batch_failed", True
    else:
        error_type, retryable = "missing_result", True
        message = "the provider's results left this request out"
    return BatchResult(
        id=request_id,
        error=message,
        error_type=error_type,
        retryable=retryable,
        attempt=batch.attempt,
        provider_batch_id=batch.provider_batch_id,
    )


def _not_run(request_id: str, attempt: int) -> BatchResult:
    return BatchResult(
        id=request_id,
        error="not finished: the job was cancelled and the provider has not ended this request's batch yet",
        error_type="cancelled",
        retryable=True,
        attempt=attempt,
    )
