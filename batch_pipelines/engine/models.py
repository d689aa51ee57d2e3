"""The public value types of the batch engine: what goes in, what comes out, and how a job looks.

The request/result values are defined in :mod:`batch_pipelines.wire.requests` (shared with the provider
clients) and re-exported here, so ``batch_pipelines.engine.models`` stays the one place users import from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from batch_pipelines.wire.requests import BatchRequest, BatchResult, BatchStatus, Embedding, RequestKind

__all__ = [
    "BatchJob",
    "BatchRequest",
    "BatchResult",
    "BatchStatus",
    "Embedding",
    "JobCost",
    "JobProgress",
    "RequestKind",
]


@dataclass(frozen=True, slots=True)
class JobProgress:
    """Counts from the provider (open batches) and the stored results (ended ones)."""

    total: int
    completed: int
    failed: int
    percent: float
    items_per_hour: float | None
    eta_seconds: float | None


@dataclass(frozen=True, slots=True)
class JobCost:
    """USD. ``estimated`` (the worst case) and ``expected`` are forecast before submit (engine.forecast,
    ``forecast_basis`` says where the expected figure comes from); the others come from reported usage
    (None if unpriced). ``input_tokens``/``output_tokens`` are the reported usage the figures come from;
    ``counted_input_tokens`` the prompt tokens counted before submit. Of the input,
    ``cached_input_tokens`` were read from the provider's prompt cache and ``cache_write_input_tokens``
    written to it; ``cache_saved_usd`` is what the cache took off ``actual_usd`` (the same tokens all at
    the plain batch input price, less the actual cost; negative when cache writes outweigh the reads)."""

    estimated_usd: float | None
    actual_usd: float | None
    realtime_usd: float | None
    saved_usd: float | None
    input_tokens: int = 0
    output_tokens: int = 0
    expected_usd: float | None = None
    forecast_basis: str | None = None
    counted_input_tokens: int | None = None
    cached_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    cache_saved_usd: float | None = None

    @property
    def worst_case_usd(self) -> float | None:
        """Prompts counted, every answer at max_tokens: what a ``max_cost_usd`` budget is compared with."""
        return self.estimated_usd


@dataclass(frozen=True, slots=True)
class BatchJob:
    """A job as recorded in the store: one submission, possibly several provider batches and attempts."""

    id: str
    status: BatchStatus
    detail: str
    provider: str
    model: str
    kind: RequestKind
    attempt: int
    provider_batch_ids: list[str]
    progress: JobProgress
    cost: JobCost
    created_at: datetime
    metadata: dict[str, str]
    response_schema: dict[str, Any] | None = None
