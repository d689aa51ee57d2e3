"""What the engine needs from a provider's batch API, in the engine's own terms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from batch_pipelines.wire.limits import BatchLimits
from batch_pipelines.wire.pricing import ModelPrice
from batch_pipelines.wire.requests import BatchRequest, BatchResult, BatchStatus, RequestKind


@dataclass(frozen=True, slots=True)
class LineError:
    """A validation error the provider reported against one input line (0-based)."""

    line: int
    code: str
    message: str


@dataclass(slots=True)
class ProviderBatchState:
    """One provider batch as last seen.

    ``phase`` is this batch alone mapped onto :class:`BatchStatus`; ``detail`` keeps the provider's words
    (validating, finalizing, expired, cancelling, …). ``ended`` means no more results will appear.
    """

    id: str
    raw_status: str
    phase: BatchStatus
    detail: str
    ended: bool
    total: int = 0
    completed: int = 0
    failed: int = 0
    created_at: float = 0.0
    input_tokens: int = 0  # usage the provider reports for the whole batch, where it does (OpenAI)
    output_tokens: int = 0
    error_code: str | None = None
    error_message: str | None = None
    line_errors: list[LineError] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    cached_input_tokens: int = 0  # of input_tokens, read from the prompt cache (OpenAI's batch usage)


class BatchProvider(Protocol):
    """A provider batch API. Implementations: OpenAIProvider, AnthropicProvider."""

    name: str
    model: str
    limits: BatchLimits
    price: ModelPrice | None

    def render_line(self, request: BatchRequest, response_schema: dict[str, Any] | None) -> bytes:
        """One JSONL input line (with its newline); raises ValueError naming the request if unusable."""
        ...

    async def create_batch(
        self, path: Path, *, kind: RequestKind, tags: dict[str, str]
    ) -> ProviderBatchState:
        """Upload the rendered lines in ``path`` and create a batch tagged with ``tags``."""
        ...

    async def find_batch(
        self, tags: dict[str, str], *, created_after: float, request_count: int, exclude: set[str]
    ) -> ProviderBatchState | None:
        """A batch created earlier for the same tags (a crash between create and record), if any."""
        ...

    async def get_batch(self, batch_id: str) -> ProviderBatchState: ...

    async def cancel_batch(self, batch_id: str) -> ProviderBatchState: ...

    def iter_result_lines(self, batch_id: str) -> AsyncIterator[bytes]:
        """Every result line of an ended batch, successes and errors, in the provider's order."""
        ...

    def parse_result_line(self, line: bytes) -> BatchResult:
        """One result line as a BatchResult whose ``id`` is the line's custom_id (raises on bad JSON)."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ResultRecordsProvider(Protocol):
    """A provider whose results are already values, not lines (the local provider's Parquet parts): the
    engine takes its BatchResults as they are, so vectors stay float32 instead of going through JSON."""

    def iter_results(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """Every result of an ended batch, successes and errors (``id`` is the request's custom_id)."""
        ...
