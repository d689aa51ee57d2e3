"""OpenAI's synchronous API (and any OpenAI-compatible server such as vLLM): chat completions, embeddings."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from batch_pipelines.providers.openai import DEFAULT_BASE_URL, request_body, result_from_body
from batch_pipelines.providers.realtime import (
    Budget,
    RateLimitSnapshot,
    RealtimeAnswer,
    call_error,
    estimate_prompt_tokens,
    header_int,
)
from batch_pipelines.providers.realtime_http import RealtimeHTTP, TransportKind
from batch_pipelines.wire.pricing import DEFAULT_OUTPUT_TOKENS, ModelPrice, price_for
from batch_pipelines.wire.requests import BatchRequest

PATHS = {"chat": "/chat/completions", "embedding": "/embeddings"}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class OpenAIRealtimeProvider:
    """One chat completion or embedding per call.

    ``base_url`` includes ``/v1``; ``api_key`` defaults to ``OPENAI_API_KEY``. OpenAI's limiter counts a
    request's prompt plus its ``max_tokens`` when it admits it, so ``limit_tokens`` is the reported prompt
    tokens plus the larger of ``max_tokens`` and the tokens produced. ``max_connections`` sizes the
    connection pool; ``transport`` chooses the HTTP client (see ``batch_pipelines.providers.realtime_http``).
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        price: ModelPrice | None = None,
        default_output_tokens: int = DEFAULT_OUTPUT_TOKENS,
        max_connections: int = 100,
        transport: TransportKind = "aiohttp",
        timeout_s: float = 120.0,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ValueError("OpenAIRealtimeProvider: no api_key given and OPENAI_API_KEY is not set")
        self.model = model
        self.price = price or price_for(model)
        self.default_output_tokens = default_output_tokens
        self._http = RealtimeHTTP(
            self.name,
            base_url or DEFAULT_BASE_URL,
            {"Authorization": f"Bearer {key}"},
            max_connections=max_connections,
            timeout_s=timeout_s,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"OpenAIRealtimeProvider(model={self.model!r}, http={self._http!r})"

    def estimate_tokens(self, request: BatchRequest) -> int:
        output = 0 if request.kind == "embedding" else request.max_tokens or self.default_output_tokens
        return estimate_prompt_tokens(request) + output

    async def call(self, request: BatchRequest, response_schema: dict[str, Any] | None) -> RealtimeAnswer:
        path = PATHS[request.kind]
        response = await self._http.post(path, _encode(request_body(self.model, request, response_schema)))
        rate_limits = rate_limits_from_headers(response.headers)
        if response.status >= 400:
            raise call_error(self.name, path, response, rate_limits)
        result = result_from_body(request.id, _decode(response.body))
        reserved_output = max(result.output_tokens, request.max_tokens or 0)
        return RealtimeAnswer(result, result.input_tokens + reserved_output, rate_limits)

    async def aclose(self) -> None:
        await self._http.aclose()


def rate_limits_from_headers(headers: Mapping[str, str]) -> RateLimitSnapshot | None:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``; None when the server sends none."""
    requests = _budget(headers, "requests")
    tokens = _budget(headers, "tokens")
    return None if requests is None and tokens is None else RateLimitSnapshot(requests, tokens)


def _budget(headers: Mapping[str, str], dimension: str) -> Budget | None:
    limit = header_int(headers, f"x-ratelimit-limit-{dimension}")
    remaining = header_int(headers, f"x-ratelimit-remaining-{dimension}")
    if limit is None or remaining is None:
        return None
    return Budget(limit, remaining, parse_duration(headers.get(f"x-ratelimit-reset-{dimension}", "")))


def parse_duration(text: str) -> float:
    """Seconds in a duration as OpenAI writes them (``12ms``, ``1.5s``, ``6m0s``); 0 when unreadable."""
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text))
