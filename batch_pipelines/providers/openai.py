"""The OpenAI Batch API (and any server speaking it): files upload, batches, output/error files."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec

from batch_pipelines.providers.http import ProviderHTTP
from batch_pipelines.providers.openai_params import conform_chat_body
from batch_pipelines.wire.errors import BatchNotFoundError, ProviderError, classify, is_known_code
from batch_pipelines.wire.limits import BatchLimits
from batch_pipelines.wire.pricing import ModelPrice, price_for
from batch_pipelines.wire.provider import LineError, ProviderBatchState
from batch_pipelines.wire.requests import BatchRequest, BatchResult, BatchStatus, RequestKind

# msgspec: 3× the stdlib encoder and faster decoding on our lines (benchmarks/million.py, extras.json).
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_EMPTY: dict[str, Any] = {}
DEFAULT_BASE_URL = "https://api.openai.com/v1"
ENDPOINTS: dict[RequestKind, str] = {"chat": "/v1/chat/completions", "embedding": "/v1/embeddings"}
# 200 MB per input file, 50,000 requests; the enqueued-token pool differs per model and account tier.
DEFAULT_LIMITS = BatchLimits(max_requests=50_000, max_bytes=200_000_000, max_enqueued_tokens=2_000_000)
LIST_PAGE = 100

_PHASES: dict[str, tuple[BatchStatus, bool]] = {
    "validating": (BatchStatus.PENDING, False),
    "in_progress": (BatchStatus.PROCESSING, False),
    "finalizing": (BatchStatus.PROCESSING, False),
    "completed": (BatchStatus.COMPLETED, True),
    "failed": (BatchStatus.FAILED, True),
    "expired": (BatchStatus.COMPLETED, True),
    "cancelling": (BatchStatus.CANCELLED, False),
    "cancelled": (BatchStatus.CANCELLED, True),
}


class OpenAIProvider:
    """OpenAI batches for chat completions and embeddings.

    ``base_url`` includes ``/v1`` (``https://api.openai.com/v1`` by default); ``api_key`` defaults to the
    ``OPENAI_API_KEY`` environment variable. ``limits`` and ``price`` override the defaults for ``model``.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        limits: BatchLimits | None = None,
        price: ModelPrice | None = None,
        completion_window: str = "24h",
        max_attempts: int = 6,
        timeout_s: float = 60.0,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ValueError("OpenAIProvider: no api_key given and OPENAI_API_KEY is not set")
        self.model = model
        self.limits = limits or DEFAULT_LIMITS
        self.price = price or price_for(model)
        self.completion_window = completion_window
        self._http = ProviderHTTP(
            self.name,
            base_url or DEFAULT_BASE_URL,
            {"Authorization": f"Bearer {key}"},
            max_attempts=max_attempts,
            timeout_s=timeout_s,
        )

    def __repr__(self) -> str:
        return f"OpenAIProvider(model={self.model!r}, http={self._http!r})"

    def render_line(self, request: BatchRequest, response_schema: dict[str, Any] | None) -> bytes:
        body = request_body(self.model, request, response_schema)
        line = {"custom_id": request.id, "method": "POST", "url": ENDPOINTS[request.kind], "body": body}
        return _encode(line) + b"\n"

    async def create_batch(
        self, path: Path, *, kind: RequestKind, tags: dict[str, str]
    ) -> ProviderBatchState:
        with path.open("rb") as handle:

            def upload_form() -> dict[str, Any]:
                handle.seek(0)
                return {
                    "files": {"file": (path.name, handle, "application/jsonl")},
                    "data": {"purpose": "batch"},
                }

            uploaded = await self._http.request_json("POST", "/files", build=upload_form)
        batch = await self._http.request_json(
            "POST",
            "/batches",
            idempotent=False,
            json={
                "input_file_id": uploaded["id"],
                "endpoint": ENDPOINTS[kind],
                "completion_window": self.completion_window,
                "metadata": tags,
            },
        )
        return _state(batch)

    async def find_batch(
        self, tags: dict[str, str], *, created_after: float, request_count: int, exclude: set[str]
    ) -> ProviderBatchState | None:
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": LIST_PAGE}
            if after:
                params["after"] = after
            page = await self._http.request_json("GET", "/batches", params=params)
            for batch in page.get("data", []):
                metadata = batch.get("metadata") or {}
                if batch["id"] not in exclude and all(metadata.get(k) == v for k, v in tags.items()):
                    return _state(batch)
            data = page.get("data", [])
            oldest = min((b.get("created_at") or 0 for b in data), default=0)
            if not page.get("has_more") or not data or oldest < created_after - 60:
                return None
            after = page.get("last_id") or data[-1]["id"]

    async def get_batch(self, batch_id: str) -> ProviderBatchState:
        return _state(await self._retrieve(batch_id))

    async def _retrieve(self, batch_id: str) -> dict[str, Any]:
        try:
            batch: dict[str, Any] = await self._http.request_json("GET", f"/batches/{batch_id}")
        except ProviderError as error:
            raise _not_found_as(error, batch_id) from None
        return batch

    async def cancel_batch(self, batch_id: str) -> ProviderBatchState:
        return _state(await self._http.request_json("POST", f"/batches/{batch_id}/cancel"))

    async def iter_result_lines(self, batch_id: str) -> AsyncIterator[bytes]:
        batch = await self._retrieve(batch_id)
        for file_id in (batch.get("output_file_id"), batch.get("error_file_id")):
            if file_id:
                try:
                    async for line in self._http.stream_lines(f"/files/{file_id}/content"):
                        yield line
                except ProviderError as error:
                    raise _not_found_as(error, file_id) from None

    def parse_result_line(self, line: bytes) -> BatchResult:
        return parse_output_line(line)

    async def aclose(self) -> None:
        await self._http.aclose()


def _not_found_as(error: ProviderError, object_id: str) -> ProviderError:
    """A 404 that names the batch or file (not a wrong URL) means OpenAI no longer has it."""
    if error.status_code == 404 and object_id in str(error.args[0]):
        return BatchNotFoundError.from_error(error)
    return error


def parse_output_line(line: bytes) -> BatchResult:
    """One line of an OpenAI batch output or error file (also what `vllm run-batch` writes).

    An error sits in the response body (OpenAI's HTTP errors), or at the top level: OpenAI's response-less
    lines, and vLLM's, which carry ``response: {status_code, request_id, body: null}`` beside
    ``error: {message, type, param, code}`` (or ``{"error": {...}}``, or a plain string). The top-level
    error is read whenever present. A provider type that ``classify`` does not know by name (vLLM's
    ``BadRequestError``) is kept in front of the message, so the dead letter names it."""
    record = _decode(line)
    custom_id = record["custom_id"]
    response = record.get("response") or _EMPTY
    body = response.get("body")
    status = response.get("status_code")
    if status == 200 and isinstance(body, dict) and not record.get("error"):
        return result_from_body(custom_id, body)
    error = _error_fields(record.get("error")) or _error_fields((body or _EMPTY).get("error")) or _EMPTY
    code, kind = error.get("code"), error.get("type")
    if status is None and isinstance(code, int):  # vLLM puts the HTTP status in `code`
        status = code
    labels = [label for label in (code, kind) if isinstance(label, str) and label]
    message = str(error.get("message") or "the provider returned no result for this request")
    if isinstance(kind, str) and kind and not is_known_code(kind):  # e.g. vLLM's "BadRequestError"
        message = f"{kind}: {message}"
    error_type, retryable = classify(labels[0] if labels else None, message, status)
    return BatchResult(custom_id, error=message, error_type=error_type, retryable=retryable)


def _error_fields(error: Any) -> dict[str, Any] | None:
    """An error as a mapping with ``message`` (and ``type``, ``code`` when given), from any of the shapes
    servers write: a mapping, a mapping wrapped in ``{"error": …}``, or a plain string."""
    if isinstance(error, str):
        return {"message": error} if error else None
    if not isinstance(error, dict) or not error:
        return None
    nested = error.get("error")
    if nested is not None and "message" not in error:
        return _error_fields(nested)
    return error


def request_body(model: str, request: BatchRequest, response_schema: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON body of one chat or embeddings call (a batch line's ``body``, or a realtime request), with
    the parameters ``model``'s family takes (see :mod:`batch_pipelines.providers.openai_params`)."""
    body: dict[str, Any]
    if request.kind == "embedding":
        body = {"model": model, "input": request.input}
    else:
        messages = request.messages or []
        if request.system is not None:
            messages = [{"role": "system", "content": request.system}, *messages]
        body = {"model": model, "messages": messages}
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if response_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": response_schema},
            }
    if request.params:
        body.update(request.params)
    return body if request.kind == "embedding" else conform_chat_body(model, body, request.id)


def result_from_body(custom_id: str, body: dict[str, Any]) -> BatchResult:
    """A successful chat completion or embeddings answer as a BatchResult (a refusal is an error)."""
    usage = body.get("usage") or _EMPTY
    input_tokens = usage.get("prompt_tokens") or usage.get("input_tokens") or 0
    output_tokens = usage.get("completion_tokens") or usage.get("output_tokens") or 0
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or _EMPTY
    cached = details.get("cached_tokens") or 0
    choices = body.get("choices")
    if choices:
        message = choices[0].get("message") or _EMPTY
        content = message.get("content")
        if content is not None:  # the common case, built positionally: this runs once per result line
            return BatchResult(
                custom_id, content, None, None, False, input_tokens, output_tokens, cached_input_tokens=cached
            )
        if message.get("refusal"):
            return BatchResult(
                custom_id,
                error=f"refused: {message['refusal']}",
                error_type="content_policy",
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cached_input_tokens=cached,
            )
        return BatchResult(
            custom_id,
            response=content or "",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached,
        )
    data = body.get("data") or [{}]
    embedding = data[0].get("embedding")
    return BatchResult(custom_id, response="", embedding=embedding, input_tokens=input_tokens)


def _state(batch: dict[str, Any]) -> ProviderBatchState:
    raw = str(batch.get("status"))
    phase, ended = _PHASES.get(raw, (BatchStatus.PROCESSING, False))
    counts = batch.get("request_counts") or {}
    errors = (batch.get("errors") or {}).get("data") or []
    first = errors[0] if errors else {}
    line_errors = [
        LineError(int(e["line"]) - 1, str(e.get("code") or ""), str(e.get("message") or ""))
        for e in errors
        if isinstance(e.get("line"), int)
    ]
    usage = batch.get("usage") or {}
    return ProviderBatchState(
        id=batch["id"],
        raw_status=raw,
        phase=phase,
        detail=str(first.get("code") or raw) if raw == "failed" else raw,
        ended=ended,
        total=int(counts.get("total") or 0),
        completed=int(counts.get("completed") or 0),
        failed=int(counts.get("failed") or 0),
        created_at=float(batch.get("created_at") or 0),
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        error_code=first.get("code"),
        error_message=first.get("message"),
        line_errors=line_errors,
        metadata=dict(batch.get("metadata") or {}),
        cached_input_tokens=int((usage.get("input_tokens_details") or {}).get("cached_tokens") or 0),
    )
