"""Collecting a finished provider batch: stream its result lines, join them on custom_id, store them.

Every request of the batch ends with exactly one stored result; those the provider returned nothing for
(expired, cancelled, refused batch) get an error explaining why, classified like any other.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

from batch_pipelines.engine.batch_files import BatchFileArchive, keep_batch_file
from batch_pipelines.engine.errors import BatchNotFoundError, classify
from batch_pipelines.engine.launching import mark_lost
from batch_pipelines.engine.models import BatchResult, BatchStatus
from batch_pipelines.engine.records import LOST, BatchRecord, JobRecord
from batch_pipelines.engine.results import ResultFinisher
from batch_pipelines.engine.store import BatchStore
from batch_pipelines.wire.provider import BatchProvider, ResultRecordsProvider

logger = logging.getLogger(__name__)

STORE_PAGE = 2000


class ResultCollector:
    def __init__(
        self, provider: BatchProvider, store: BatchStore, archive: BatchFileArchive | None = None
    ) -> None:
        self.provider = provider
        self.store = store
        self.archive = archive

    async def collect_ended(self, record: JobRecord) -> None:
        """Store the results of every ended provider batch of the job not collected yet."""
        for batch in await self.store.get_batches(record.id):
            if batch.ended and not batch.collected:
                await self.collect(record, batch)

    async def collect(self, record: JobRecord, batch: BatchRecord) -> list[BatchResult]:
        """Store a finished batch's results, joined on custom_id, plus one error for each request the
        provider returned nothing for (expired, cancelled, failed batch). Returns what it stored, one
        result per request of the batch in line order (a provider may answer in any order)."""
        finisher = ResultFinisher(
            price=record.price,
            response_schema=record.response_schema,
            attempt=batch.attempt,
            provider_batch_id=batch.provider_batch_id,
        )
        by_line: dict[int, BatchResult] = {}  # (a line answered twice keeps the answer stored last)
        if batch.provider_batch_id is not None and batch.raw_status != LOST:
            members = await self.store.chunk_request_ids(record.id, batch.attempt, batch.chunk)
            buffer: list[BatchResult] = []
            # A copy of the output for the archive (deleted when closed, or collected on an error); a
            # provider whose results are values keeps its own files (the local provider's parts).
            archived = self.archive is not None and not isinstance(self.provider, ResultRecordsProvider)
            copy = tempfile.NamedTemporaryFile(suffix=".jsonl") if archived else None  # noqa: SIM115
            try:
                async for parsed in self._parsed_results(batch.provider_batch_id, copy):
                    line_number = members.get(parsed.id)
                    if line_number is None:
                        logger.warning(
                            "batch %s: result for unknown id %r", batch.provider_batch_id, parsed.id
                        )
                        continue
                    by_line[line_number] = finisher.finish(parsed)
                    buffer.append(by_line[line_number])
                    if len(buffer) >= STORE_PAGE:
                        await self.store.upsert_results(record.id, buffer)
                        buffer = []
            except BatchNotFoundError as error:  # its results were deleted before we read them all
                mark_lost(batch, error)
            await self.store.upsert_results(record.id, buffer)
            if copy is not None:
                with copy:
                    copy.flush()
                    await keep_batch_file(self.archive, batch, "output", Path(copy.name))
        missing = await self.store.unresolved_in_chunk(record.id, batch.attempt, batch.chunk)
        for start in range(0, len(missing), STORE_PAGE):
            page = [
                (line, unreturned_result(batch, rid, line))
                for rid, line in missing[start : start + STORE_PAGE]
            ]
            await self.store.upsert_results(record.id, [result for _line, result in page])
            by_line.update(page)
        batch.collected = True
        await self.store.save_batch(batch)
        return [by_line[line] for line in sorted(by_line)]

    async def _parsed_results(self, batch_id: str, copy: IO[bytes] | None) -> AsyncIterator[BatchResult]:
        """The batch's results: as values from a provider that has them so (its own files stay where it
        keeps them), else parsed from its result lines (copied to ``copy`` as they come)."""
        if isinstance(self.provider, ResultRecordsProvider):
            async for result in self.provider.iter_results(batch_id):
                yield result
            return
        async for line in self.provider.iter_result_lines(batch_id):
            if copy is not None:
                copy.write(line if line.endswith(b"\n") else line + b"\n")
            try:
                parsed = self.provider.parse_result_line(line)
            except (ValueError, KeyError, TypeError, IndexError) as error:
                logger.warning("batch %s: skipping unreadable result line (%s)", batch_id, error)
                continue
            yield parsed


def unreturned_result(batch: BatchRecord, request_id: str, line: int) -> BatchResult:
    """The result of a request the provider returned nothing for, explained by the batch's fate."""
    line_error = next((e for e in batch.line_errors if e.line == line), None)
    if line_error is not None:
        error_type, retryable = classify(line_error.code, line_error.message)
        message = line_error.message
    elif batch.raw_status == LOST:
        error_type, retryable = "batch_lost", True
        message = (
            f"the provider no longer knows batch {batch.provider_batch_id} ({batch.error_message}); "
            "the request was not answered"
        )
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
