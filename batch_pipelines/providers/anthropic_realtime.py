"""Anthropic's synchronous Messages API."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from batch_pipelines.providers.anthropic import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_TOKENS,
    api_version_from,
    message_params,
    result_from_message,
)
from batch_pipelines.providers.realtime import (
    Budget,
    RateLimitSnapshot,
    RealtimeAnswer,
    call_error,
    estimate_prompt_tokens,
    header_int,
    seconds_until,
)
from batch_pipelines.providers.realtime_http import RealtimeHTTP, TransportKind
from batch_pipelines.wire.pricing import ModelPrice, price_for
from batch_pipelines.wire.requests import BatchRequest

MESSAGES_PATH = "/v1/messages"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class AnthropicRealtimeProvider:
    """One message per call (chat only).

    ``base_url`` is the API root without ``/v1``; ``api_key`` defaults to ``ANTHROPIC_API_KEY``. A
    ``response_schema`` is sent as structured output (``output_config.format``, as batches do).
    ``limit_tokens`` counts the input tokens plus the larger of ``max_tokens`` and the tokens produced,
    as the limiter admitted it. ``api_version``: the ``anthropic-version`` header, as AnthropicProvider.
    """

    name = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        price: ModelPrice | None = None,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        max_connections: int = 100,
        transport: TransportKind = "aiohttp",
        timeout_s: float = 120.0,
        api_version: str | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ValueError("AnthropicRealtimeProvider: no api_key given and ANTHROPIC_API_KEY is not set")
        self.model = model
        self.price = price or price_for(model)
        self.default_max_tokens = default_max_tokens
        self._http = RealtimeHTTP(
            self.name,
            (base_url or DEFAULT_BASE_URL).rstrip("/").removesuffix("/v1"),
            {"x-api-key": key, "anthropic-version": api_version_from(api_version)},
            max_connections=max_connections,
            timeout_s=timeout_s,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"AnthropicRealtimeProvider(model={self.model!r}, http={self._http!r})"

    def estimate_tokens(self, request: BatchRequest) -> int:
        return estimate_prompt_tokens(request) + (request.max_tokens or self.default_max_tokens)

    async def call(self, request: BatchRequest, response_schema: dict[str, Any] | None) -> RealtimeAnswer:
        if request.kind != "chat":
            raise ValueError(f"request {request.id!r}: Anthropic has no embeddings API")
        body = message_params(self.model, request, self.default_max_tokens)
        if response_schema is not None:
            body["output_config"] = {"format": {"type": "json_schema", "schema": response_schema}}
        response = await self._http.post(MESSAGES_PATH, _encode(body))
        rate_limits = rate_limits_from_headers(response.headers)
        if response.status >= 400:
            raise call_error(self.name, MESSAGES_PATH, response, rate_limits)
        result = result_from_message(request.id, _decode(response.body))
        reserved_output = max(result.output_tokens, body["max_tokens"])
        return RealtimeAnswer(result, result.input_tokens + reserved_output, rate_limits)

    async def aclose(self) -> None:
        await self._http.aclose()


def rate_limits_from_headers(headers: Mapping[str, str]) -> RateLimitSnapshot | None:
    """``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`` (reset as RFC 3339)."""
    requests = _budget(headers, "requests")
    tokens = _budget(headers, "tokens")
    return None if requests is None and tokens is None else RateLimitSnapshot(requests, tokens)


def _budget(headers: Mapping[str, str], dimension: str) -> Budget | None:
    limit = header_int(headers, f"anthropic-ratelimit-{dimension}-limit")
    remaining = header_int(headers, f"anthropic-ratelimit-{dimension}-remaining")
    if limit is None or remaining is None:
        return None
    reset = headers.get(f"anthropic-ratelimit-{dimension}-reset")
    try:
        reset_s = (
            seconds_until(datetime.fromisoformat(reset.replace("Z", "+00:00")).timestamp()) if reset else 0.0
        )
    except ValueError:
        reset_s = 0.0
    return Budget(limit, remaining, reset_s)
