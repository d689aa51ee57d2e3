"""Hybrid ``auto`` mode: urgent items through the realtime path now, the rest through a provider batch.

Urgency is a priority threshold, a predicate on the request, or both (either makes an item urgent). Both
halves produce ``BatchResult`` values, so ``collect_results`` returns one list in one shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from batch_pipelines.engine.manager import BatchManager
from batch_pipelines.engine.models import BatchJob, BatchRequest, BatchResult
from batch_pipelines.realtime.pool import RealtimeSummary, process_realtime
from batch_pipelines.realtime.queue import QueueItem, WorkQueue


@dataclass(frozen=True, slots=True)
class UrgencyRule:
    """An item is urgent when its priority is at least ``priority_threshold`` or ``predicate`` says so."""

    priority_threshold: int | None = None
    predicate: Callable[[BatchRequest], bool] | None = None

    def __post_init__(self) -> None:
        if self.priority_threshold is None and self.predicate is None:
            raise ValueError("UrgencyRule needs a priority_threshold, a predicate, or both")

    def is_urgent(self, item: QueueItem) -> bool:
        if self.priority_threshold is not None and item.priority >= self.priority_threshold:
            return True
        return self.predicate is not None and self.predicate(item.request)


def split_urgent(
    work: Iterable[BatchRequest | QueueItem], rule: UrgencyRule
) -> tuple[list[QueueItem], list[BatchRequest]]:
    """The urgent items (with their priorities, for the queue) and the requests left for the batch path."""
    urgent: list[QueueItem] = []
    rest: list[BatchRequest] = []
    for entry in work:
        item = entry if isinstance(entry, QueueItem) else QueueItem(entry)
        if rule.is_urgent(item):
            urgent.append(item)
        else:
            rest.append(item.request)
    return urgent, rest


@dataclass(frozen=True, slots=True)
class AutoOutcome:
    """The realtime half's summary and the batch job holding the rest (None when nothing was left)."""

    realtime: RealtimeSummary
    batch_job: BatchJob | None
    urgent_ids: list[str]
    batch_ids: list[str]


async def process_auto(
    work: Iterable[BatchRequest | QueueItem],
    *,
    rule: UrgencyRule,
    manager: BatchManager,
    job_id: str,
    queue: WorkQueue,
    response_schema: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
    **realtime: Any,
) -> AutoOutcome:
    """Submit the non-urgent requests as batch job ``job_id`` (without waiting for it), then answer the
    urgent ones through ``process_realtime`` (``realtime`` holds its keyword arguments: provider_client,
    limiter, concurrency, …). Submitting first starts the batch's clock while the realtime half runs."""
    urgent, rest = split_urgent(work, rule)
    job = None
    if rest:
        job = await manager.submit(rest, job_id=job_id, metadata=metadata, response_schema=response_schema)
    summary = await process_realtime(urgent, queue=queue, response_schema=response_schema, **realtime)
    return AutoOutcome(summary, job, [item.request.id for item in urgent], [request.id for request in rest])


async def collect_results(queue: WorkQueue, manager: BatchManager, job_id: str | None) -> list[BatchResult]:
    """Realtime results from ``queue`` followed by the batch job's (raises JobNotFinishedError while the
    job runs)."""
    results = await queue.results()
    if job_id is not None:
        results.extend(await manager.get_results(job_id))
    return results
