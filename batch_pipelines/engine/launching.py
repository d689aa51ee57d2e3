"""Creating the provider batches a job recorded as intents: once each, within the enqueued-token pool.

An intent is claimed (compare-and-set in the store) before the provider's create call and tagged with
job id, attempt and chunk, so a process that died between the call and recording its answer leaves a
trace: whoever launches next looks the batch up at the provider and adopts it instead of creating
another.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from batch_pipelines.engine.batch_files import BatchFileArchive, keep_batch_file
from batch_pipelines.engine.errors import ProviderError
from batch_pipelines.engine.models import BatchRequest, BatchStatus
from batch_pipelines.engine.records import LAUNCHING, LOST, QUEUED, BatchRecord, JobRecord
from batch_pipelines.engine.splitting import Chunk
from batch_pipelines.engine.store import BatchStore
from batch_pipelines.scratch import scratch_folder
from batch_pipelines.wire.provider import BatchProvider, ProviderBatchState

logger = logging.getLogger(__name__)

WAITING_FOR_BUDGET = "queued: waiting for the enqueued-token budget"
# Errors at batch creation that condemn this batch's content only (recorded as its failure, not raised).
# How long a claimed launch counts as in flight: the create call with its retries ends well within this.
# A claim older than this, with no batch at the provider, was left by a process that died before
# creating it, and is launched again.
LAUNCH_LEASE_S = 300.0
BATCH_CONTENT_ERRORS = frozenset({"invalid_request", "request_too_large"})


class BatchLauncher:
    def __init__(
        self,
        provider: BatchProvider,
        store: BatchStore,
        work_dir: Path | None,
        archive: BatchFileArchive | None = None,
    ) -> None:
        self.provider = provider
        self.store = store
        self.work_dir = work_dir
        self.archive = archive

    async def launch_queued(self, record: JobRecord, files: dict[int, Path]) -> None:
        """Create the provider batches recorded as intents, as far as the enqueued-token pool allows."""
        if record.cancel_requested:
            return
        batch_records = await self.store.get_batches(record.id)
        known = {b.provider_batch_id for b in batch_records if b.provider_batch_id}
        queued = [b for b in batch_records if b.raw_status == QUEUED and not b.ended]
        if not queued:
            return
        pool = self.provider.limits.max_enqueued_tokens
        with scratch_folder(self.work_dir, "batch-") as tmp:
            for batch in queued:
                if pool is not None:
                    enqueued = await self.store.enqueued_tokens(self.provider.name, self.provider.model)
                    if enqueued and enqueued + batch.est_tokens > pool:
                        batch.detail = WAITING_FOR_BUDGET
                        await self.store.save_batch(batch)
                        return
                state = await self._find_launched(batch, known)
                sent: Path | None = None  # the input file this call uploaded, for the archive
                if state is None:
                    if _launch_in_flight(batch):
                        continue  # another process claimed it moments ago and is creating it now
                    started = time.time()
                    if not await self.store.claim_launch(batch, started):
                        continue  # another process is launching this batch right now
                    batch.launch_started_at, batch.detail = started, LAUNCHING
                    path = files.get(batch.chunk) or await self._render_chunk(record, batch, tmp)
                    try:
                        state = await self.provider.create_batch(path, kind=record.kind, tags=batch.tags)
                    except ProviderError as error:
                        if error.error_type in BATCH_CONTENT_ERRORS:  # this batch is bad; others may be fine
                            mark_rejected(batch, error)
                            await self.store.save_batch(batch)
                            continue
                        # Pool full, provider down, or a key/account problem: the intent stays queued so
                        # a later refresh (or re-running submit) launches it.
                        batch.detail = f"queued: {error.error_type}"
                        await self.store.save_batch(batch)
                        if error.error_type == "token_limit_exceeded":
                            return
                        raise
                    sent = path
                apply_state(batch, state)
                known.add(state.id)
                await self.store.save_batch(batch)
                if sent is not None:
                    await keep_batch_file(self.archive, batch, "input", sent)

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
            while (page := await self.store.next_page(pages)) is not None:
                for payload in page:
                    handle.write(
                        self.provider.render_line(BatchRequest.from_json(payload), record.response_schema)
                    )
        return path


def _launch_in_flight(batch: BatchRecord) -> bool:
    started = batch.launch_started_at
    return batch.detail == LAUNCHING and started is not None and time.time() - started < LAUNCH_LEASE_S


def intent(job_id: str, attempt: int, chunk: Chunk, now: float) -> BatchRecord:
    return BatchRecord(
        job_id=job_id,
        attempt=attempt,
        chunk=chunk.index,
        request_count=chunk.request_count,
        byte_count=chunk.byte_count,
        est_tokens=chunk.est_tokens,
        recorded_at=now,
    )


def apply_state(batch: BatchRecord, state: ProviderBatchState) -> None:
    batch.provider_batch_id = state.id
    batch.raw_status = state.raw_status
    batch.phase = state.phase
    batch.detail = state.detail
    batch.ended = state.ended
    batch.completed = state.completed
    batch.failed = state.failed
    batch.input_tokens = state.input_tokens
    batch.output_tokens = state.output_tokens
    batch.cached_input_tokens = state.cached_input_tokens
    batch.error_code = state.error_code
    batch.error_message = state.error_message
    batch.line_errors = list(state.line_errors)


def mark_rejected(batch: BatchRecord, error: ProviderError) -> None:
    batch.raw_status = "rejected"
    batch.phase = BatchStatus.FAILED
    batch.detail = f"rejected: {error.error_type}"
    batch.ended = True
    batch.error_code = error.error_type
    batch.error_message = str(error.args[0])


def mark_lost(batch: BatchRecord, error: ProviderError) -> None:
    """The provider no longer knows the batch: it has ended for us, and every request of it that has no
    stored result is collected as a retryable ``batch_lost`` failure (resubmitted as a new attempt)."""
    logger.warning(
        "job %s: provider batch %s (attempt %d, chunk %d, %d requests) is lost: %s no longer knows it (%s); "
        "its unanswered requests are resubmitted as a new attempt",
        batch.job_id,
        batch.provider_batch_id,
        batch.attempt,
        batch.chunk,
        batch.request_count,
        error.provider,
        error.args[0],
    )
    batch.raw_status = LOST
    batch.phase = BatchStatus.FAILED
    batch.detail = "lost: the provider no longer knows this batch"
    batch.ended = True
    batch.completed = batch.failed = batch.input_tokens = batch.output_tokens = 0
    batch.error_code = "batch_lost"
    batch.error_message = str(error.args[0])
