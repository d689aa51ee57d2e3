"""A job's status, detail and progress, derived from its provider batches and stored results."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from batch_pipelines.engine.models import BatchStatus, JobProgress
from batch_pipelines.engine.records import BatchRecord, JobRecord, ResultCounts

_UNREMARKABLE = {"completed", "ended"}


def summarize(
    job: JobRecord, batches: Sequence[BatchRecord], counts: ResultCounts
) -> tuple[BatchStatus, str]:
    """Map the provider batches onto one of the five statuses, keeping the provider's words in the detail.

    COMPLETED once every batch has ended and at least one request succeeded; FAILED when every batch has
    ended and nothing succeeded; CANCELLED as soon as a cancel was asked for.
    """
    open_batches = [b for b in batches if not b.ended]
    if job.cancel_requested:
        return BatchStatus.CANCELLED, "cancelling" if open_batches else "cancelled"
    if not job.prepared:
        return BatchStatus.PENDING, "preparing"
    if open_batches:
        details = _unique(b.detail for b in open_batches)
        started = any(b.ended for b in batches if b.attempt == job.attempt)
        if not started and all(b.phase == BatchStatus.PENDING for b in open_batches):
            return BatchStatus.PENDING, ", ".join(details)
        return BatchStatus.PROCESSING, ", ".join(details)
    succeeded = counts.succeeded + sum(b.completed for b in batches if not b.collected)
    failed = counts.errored + sum(b.failed for b in batches if not b.collected)
    notes = _unique(b.detail for b in batches if b.attempt == job.attempt and b.detail not in _UNREMARKABLE)
    if failed:
        retryable = f", {counts.retryable} retryable" if all(b.collected for b in batches) else ""
        notes.append(f"{failed} of {job.total} failed{retryable}")
    if succeeded:
        return BatchStatus.COMPLETED, "; ".join(notes) or "completed"
    return BatchStatus.FAILED, "; ".join(notes) or "no request succeeded"


def progress(
    job: JobRecord, batches: Sequence[BatchRecord], counts: ResultCounts, *, now: float
) -> JobProgress:
    """Done/failed/total with rate and ETA; uncollected batches count by the provider's numbers."""
    completed = counts.succeeded + sum(b.completed for b in batches if not b.collected)
    failed = counts.errored + sum(b.failed for b in batches if not b.collected)
    total = job.total
    done = min(completed + failed, total) if total else completed + failed
    percent = 100.0 * done / total if total else 0.0
    elapsed = (job.finished_at or now) - job.created_at
    rate = done / elapsed * 3600 if elapsed > 0 and done else None
    remaining = total - done
    eta = 0.0 if remaining <= 0 else (remaining / rate * 3600 if rate else None)
    return JobProgress(total, completed, failed, round(percent, 2), rate, eta)


def _unique(values: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen
