"""Streaming requests into provider-batch input files that each respect every limit.

A request goes to the current file unless adding it would break the request-count, byte or
enqueued-token limit; then the file is closed and a new one begins. Nothing but the open file's
counters stays in memory, so a million requests cost no more than a thousand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

from batch_pipelines.engine.limits import BatchLimits, estimate_tokens
from batch_pipelines.engine.models import BatchRequest

WRITE_BUFFER = 1 << 20


@dataclass(frozen=True, slots=True)
class Chunk:
    """One rendered input file: it becomes one provider batch."""

    index: int
    path: Path
    request_count: int
    byte_count: int
    est_tokens: int


class Placement(NamedTuple):
    """Where a request landed: file ``chunk``, line ``line`` (0-based), with its estimated prompt tokens."""

    chunk: int
    line: int
    est_tokens: int


class RequestTooLargeError(ValueError):
    """A single request exceeds a per-batch limit on its own, so no split can place it."""


class ChunkSplitter:
    """Renders requests with ``render`` and writes them into ``directory/<prefix>-<n>.jsonl`` files."""

    def __init__(
        self,
        directory: Path,
        limits: BatchLimits,
        render: Callable[[BatchRequest], bytes],
        *,
        prefix: str = "chunk",
    ) -> None:
        self.directory = directory
        self.limits = limits
        self.render = render
        self.prefix = prefix
        self.chunks: list[Chunk] = []
        self._file: IO[bytes] | None = None
        self._index = -1
        self._count = 0
        self._bytes = 0
        self._tokens = 0

    def add(self, request: BatchRequest) -> Placement:
        line = self.render(request)
        tokens = estimate_tokens(request)
        size = len(line)
        limits = self.limits
        token_limit = limits.max_enqueued_tokens
        if (
            self._file is None
            or self._count >= limits.max_requests
            or self._bytes + size > limits.max_bytes
            or (token_limit is not None and self._tokens + tokens > token_limit)
        ):
            self._check_fits(request, size, tokens)
            self._start_chunk()
        assert self._file is not None
        self._file.write(line)
        placement = Placement(self._index, self._count, tokens)
        self._count += 1
        self._bytes += size
        self._tokens += tokens
        return placement

    def _check_fits(self, request: BatchRequest, size: int, tokens: int) -> None:
        limits = self.limits
        if size > limits.max_bytes:
            raise RequestTooLargeError(
                f"request {request.id!r} renders to {size} bytes, over the {limits.max_bytes}-byte limit"
            )
        if limits.max_enqueued_tokens is not None and tokens > limits.max_enqueued_tokens:
            raise RequestTooLargeError(
                f"request {request.id!r} has about {tokens} prompt tokens, over the "
                f"{limits.max_enqueued_tokens}-token enqueued limit"
            )

    def finish(self) -> list[Chunk]:
        """Close the last file; the chunks written, in order."""
        self._close_chunk()
        return self.chunks

    def path_of(self, index: int) -> Path:
        return self.directory / f"{self.prefix}-{index:05d}.jsonl"

    def _start_chunk(self) -> None:
        self._close_chunk()
        self._index += 1
        self._file = self.path_of(self._index).open("wb", buffering=WRITE_BUFFER)
        self._count = self._bytes = self._tokens = 0

    def _close_chunk(self) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        self.chunks.append(
            Chunk(self._index, self.path_of(self._index), self._count, self._bytes, self._tokens)
        )
