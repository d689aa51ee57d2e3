"""What the store keeps about a job and its provider batches (internal to the engine)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from batch_pipelines.engine.models import BatchStatus, RequestKind
from batch_pipelines.engine.pricing import ModelPrice
from batch_pipelines.wire.provider import LineError

QUEUED = "queued"  # raw_status of a batch recorded as intent, not created at the provider yet
LAUNCHING = "queued: launching"  # detail of an intent whose create call a process has claimed
LOST = "lost"  # raw_status of a batch the provider answered it no longer knows


@dataclass(slots=True)
class JobRecord:
    id: str
    provider: str
    model: str
    kind: RequestKind
    created_at: float
    attempt: int = 1
    prepared: bool = False
    cancel_requested: bool = False
    total: int = 0
    estimated_usd: float | None = None  # the worst case (engine.forecast)
    expected_usd: float | None = None
    forecast_basis: str | None = None
    counted_input_tokens: int | None = None
    price: ModelPrice | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    response_schema: dict[str, Any] | None = None
    status: BatchStatus = BatchStatus.PENDING
    detail: str = "preparing"
    finished_at: float | None = None
    # Until when the submitter preparing this job holds it (renewed as it goes); None once prepared.
    prepare_lease_until: float | None = None


@dataclass(slots=True)
class BatchRecord:
    """One provider batch of a job attempt; recorded (as QUEUED) before the provider hears of it."""

    job_id: str
    attempt: int
    chunk: int
    request_count: int
    byte_count: int
    est_tokens: int
    recorded_at: float
    provider_batch_id: str | None = None
    raw_status: str = QUEUED
    phase: BatchStatus = BatchStatus.PENDING
    detail: str = QUEUED
    ended: bool = False
    completed: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    error_code: str | None = None
    error_message: str | None = None
    line_errors: list[LineError] = field(default_factory=list)
    collected: bool = False
    launch_started_at: float | None = None
    cached_input_tokens: int = 0

    @property
    def tags(self) -> dict[str, str]:
        """The metadata that identifies this batch at the provider (found again after a crash)."""
        return {"bp_job_id": self.job_id, "bp_attempt": str(self.attempt), "bp_chunk": str(self.chunk)}


@dataclass(frozen=True, slots=True)
class ResultCounts:
    """Aggregates over a job's stored results."""

    succeeded: int = 0
    errored: int = 0
    retryable: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_input_tokens: int = 0
