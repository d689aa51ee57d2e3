"""The Anthropic Message Batches API: one JSON body of requests, results as a JSONL stream."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from batch_pipelines.providers.http import ProviderHTTP
from batch_pipelines.wire.errors import BatchNotFoundError, ProviderError, classify
from batch_pipelines.wire.limits import BatchLimits
from batch_pipelines.wire.pricing import ModelPrice, price_for
from batch_pipelines.wire.provider import ProviderBatchState
from batch_pipelines.wire.requests import BatchRequest, BatchResult, BatchStatus, RequestKind

# msgspec: 3× the stdlib encoder and faster decoding on our lines (benchmarks/million.py, extras.json).
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
API_VERSION_ENV = "BATCH_PIPELINES_ANTHROPIC_VERSION"
# 100,000 requests or 256 MB per batch; the margin leaves room for the JSON wrapper around the lines.
DEFAULT_LIMITS = BatchLimits(max_requests=100_000, max_bytes=256_000_000 - 1_000_000)
DEFAULT_MAX_TOKENS = 1024
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
LIST_PAGE = 100
READ_CHUNK = 1 << 16


class AnthropicProvider:
    """Anthropic message batches (chat only; Anthropic has no embeddings API).

    ``base_url`` is the API root without ``/v1``; ``api_key`` defaults to ``ANTHROPIC_API_KEY``. Request ids
    must match ``^[a-zA-Z0-9_-]{1,64}$``; ``max_tokens`` defaults to ``default_max_tokens``.
    ``api_version`` is the ``anthropic-version`` header (default: ``BATCH_PIPELINES_ANTHROPIC_VERSION``,
    else 2023-06-01).
    """

    name = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        limits: BatchLimits | None = None,
        price: ModelPrice | None = None,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        max_attempts: int = 6,
        timeout_s: float = 60.0,
        api_version: str | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ValueError("AnthropicProvider: no api_key given and ANTHROPIC_API_KEY is not set")
        self.model = model
        self.limits = limits or DEFAULT_LIMITS
        self.price = price or price_for(model)
        self.default_max_tokens = default_max_tokens
        root = (base_url or DEFAULT_BASE_URL).rstrip("/")
        root = root.removesuffix("/v1")
        self._http = ProviderHTTP(
            self.name,
            root,
            {
                "x-api-key": key,
                "anthropic-version": api_version_from(api_version),
                "content-type": "application/json",
            },
            max_attempts=max_attempts,
            timeout_s=timeout_s,
        )

    def __repr__(self) -> str:
        return f"AnthropicProvider(model={self.model!r}, http={self._http!r})"

    def render_line(self, request: BatchRequest, response_schema: dict[str, Any] | None) -> bytes:
        if request.kind != "chat":
            raise ValueError(
                f"request {request.id!r}: Anthropic batches support chat requests only, not embeddings"
            )
        if not CUSTOM_ID.match(request.id):
            raise ValueError(
                f"request {request.id!r}: Anthropic needs ids of 1-64 letters, digits, '_' or '-'"
            )
        params = message_params(self.model, request, self.default_max_tokens)
        if response_schema is not None:
            # Structured outputs (GA form): the model is constrained to the schema, which the engine
            # still validates on the way back.
            params["output_config"] = {"format": {"type": "json_schema", "schema": response_schema}}
        return _encode({"custom_id": request.id, "params": params}) + b"\n"

    async def create_batch(
        self, path: Path, *, kind: RequestKind, tags: dict[str, str]
    ) -> ProviderBatchState:
        # Anthropic batches carry no metadata: the tags are only used by find_batch's caller.
        # The length is known before sending (as the SDK sends it): a streamed body without one would go
        # out chunked, which not every proxy in front of the API accepts.
        length = _requests_body_length(path)

        def body() -> dict[str, Any]:
            return {"content": _requests_body(path), "headers": {"content-length": str(length)}}

        return _state(
            await self._http.request_json("POST", "/v1/messages/batches", build=body, idempotent=False)
        )

    async def find_batch(
        self, tags: dict[str, str], *, created_after: float, request_count: int, exclude: set[str]
    ) -> ProviderBatchState | None:
        """Best effort, as batches carry no metadata: the one unclaimed batch created since the intent was
        recorded with the same number of requests; None when there is none or more than one."""
        candidates: list[ProviderBatchState] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": LIST_PAGE}
            if after:
                params["after_id"] = after
            page = await self._http.request_json("GET", "/v1/messages/batches", params=params)
            data = page.get("data", [])
            for batch in data:
                state = _state(batch)
                if (
                    state.created_at >= created_after - 5
                    and state.id not in exclude
                    and state.total == request_count
                ):
                    candidates.append(state)
            oldest = min((_timestamp(b.get("created_at")) for b in data), default=0.0)
            if not page.get("has_more") or not data or oldest < created_after - 5:
                break
            after = page.get("last_id") or data[-1]["id"]
        return candidates[0] if len(candidates) == 1 else None

    async def get_batch(self, batch_id: str) -> ProviderBatchState:
        try:
            return _state(await self._http.request_json("GET", f"/v1/messages/batches/{batch_id}"))
        except ProviderError as error:
            raise _not_found_as(error) from None

    async def cancel_batch(self, batch_id: str) -> ProviderBatchState:
        return _state(await self._http.request_json("POST", f"/v1/messages/batches/{batch_id}/cancel"))

    async def iter_result_lines(self, batch_id: str) -> AsyncIterator[bytes]:
        """The lines at the batch's ``results_url`` (where the API says they are; null until it ends)."""
        try:
            batch = await self._http.request_json("GET", f"/v1/messages/batches/{batch_id}")
        except ProviderError as error:
            raise _not_found_as(error) from None
        results_url = batch.get("results_url")
        if not results_url:
            raise ProviderError(
                f"message batch {batch_id} has no results_url yet (processing_status "
                f"{batch.get('processing_status')!r}); results exist once it has ended",
                provider=self.name,
                error_type="not_found",
            )
        try:
            async for line in self._http.stream_lines(str(results_url)):
                yield line
        except ProviderError as error:
            raise _not_found_as(error) from None

    def parse_result_line(self, line: bytes) -> BatchResult:
        record = _decode(line)
        custom_id = record["custom_id"]
        result = record.get("result") or {}
        kind = result.get("type")
        if kind == "succeeded":
            return result_from_message(custom_id, result.get("message") or {})
        if kind == "errored":
            outer: dict[str, Any] = result.get("error") or {}
            nested = outer.get("error")
            inner: dict[str, Any] = nested if isinstance(nested, dict) else outer
            message_text = str(inner.get("message") or "errored")
            error_type, retryable = classify(inner.get("type"), message_text)
            return BatchResult(custom_id, error=message_text, error_type=error_type, retryable=retryable)
        if kind == "canceled":
            return BatchResult(
                custom_id,
                error="the batch was cancelled before this request ran",
                error_type="cancelled",
                retryable=True,
            )
        if kind == "expired":
            return BatchResult(
                custom_id,
                error="the batch expired before this request ran",
                error_type="batch_expired",
                retryable=True,
            )
        return BatchResult(custom_id, error=f"unknown result type {kind!r}", error_type="unknown")

    async def aclose(self) -> None:
        await self._http.aclose()


def message_params(model: str, request: BatchRequest, default_max_tokens: int) -> dict[str, Any]:
    """The Messages API body of one chat request (a batch request's ``params``, or a realtime call)."""
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens or default_max_tokens,
        "messages": request.messages,
    }
    if request.system is not None:
        params["system"] = request.system
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.params:
        params.update(request.params)
    return params


def api_version_from(configured: str | None) -> str:
    return configured or os.environ.get(API_VERSION_ENV) or API_VERSION


def result_from_message(custom_id: str, message: dict[str, Any]) -> BatchResult:
    """A Message object (its text blocks joined, its usage) as a successful BatchResult.

    Anthropic's ``input_tokens`` leaves out the prompt tokens read from or written to the cache; the
    result's ``input_tokens`` counts them all, as OpenAI's ``prompt_tokens`` does."""
    usage = message.get("usage") or {}
    text = "".join(
        block.get("text", "") for block in message.get("content") or () if block.get("type") == "text"
    )
    read = int(usage.get("cache_read_input_tokens") or 0)
    written = int(usage.get("cache_creation_input_tokens") or 0)
    return BatchResult(
        custom_id,
        response=text,
        input_tokens=int(usage.get("input_tokens") or 0) + read + written,
        output_tokens=int(usage.get("output_tokens") or 0),
        cached_input_tokens=read,
        cache_write_input_tokens=written,
    )


async def _requests_body(path: Path) -> AsyncIterator[bytes]:
    """``{"requests": [line, line, …]}`` streamed from the rendered JSONL file."""
    yield b'{"requests":['
    first = True
    with path.open("rb") as handle:
        for line in handle:
            stripped = line.rstrip(b"\n")
            if not stripped:
                continue
            yield stripped if first else b"," + stripped
            first = False
    yield b"]}"


def _not_found_as(error: ProviderError) -> ProviderError:
    """Anthropic answers a batch it does not have (deleted, another workspace) with not_found_error."""
    if error.status_code == 404 and error.error_type == "not_found":
        return BatchNotFoundError.from_error(error)
    return error


def _requests_body_length(path: Path) -> int:
    """The byte length of what :func:`_requests_body` yields for ``path``."""
    lines = total = 0
    with path.open("rb") as handle:
        for line in handle:
            stripped = len(line.rstrip(b"\n"))
            if stripped:
                lines += 1
                total += stripped
    return len(b'{"requests":[') + total + max(lines - 1, 0) + len(b"]}")


def _timestamp(value: Any) -> float:
    if not value:
        return 0.0
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _state(batch: dict[str, Any]) -> ProviderBatchState:
    raw = str(batch.get("processing_status"))
    counts = batch.get("request_counts") or {}
    succeeded = int(counts.get("succeeded") or 0)
    failed = sum(int(counts.get(k) or 0) for k in ("errored", "canceled", "expired"))
    total = succeeded + failed + int(counts.get("processing") or 0)
    cancelled = bool(batch.get("cancel_initiated_at"))
    if raw == "ended":
        ended = True
        if cancelled:
            phase, detail = BatchStatus.CANCELLED, "cancelled"
        elif int(counts.get("expired") or 0):
            phase, detail = BatchStatus.COMPLETED, "expired"
        else:
            phase, detail = (BatchStatus.COMPLETED if succeeded else BatchStatus.FAILED), "ended"
    elif raw == "canceling":
        phase, detail, ended = BatchStatus.CANCELLED, "cancelling", False
    else:
        phase, detail, ended = BatchStatus.PROCESSING, "in_progress", False
    return ProviderBatchState(
        id=batch["id"],
        raw_status=raw,
        phase=phase,
        detail=detail,
        ended=ended,
        total=total,
        completed=succeeded,
        failed=failed,
        created_at=_timestamp(batch.get("created_at")),
    )
