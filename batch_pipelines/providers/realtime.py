"""What the realtime path needs from a provider's synchronous API, in the engine's own terms.

A realtime provider sends one request and returns a :class:`RealtimeAnswer`: the result, the tokens the
provider's rate limiter counts for the call, and the provider's own view of the remaining budget read
from its rate-limit headers. A failed call raises :class:`RealtimeCallError` (a ``ProviderError``) that
carries the same budget view and the server's ``retry-after``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from batch_pipelines.providers.http import error_from_answer
from batch_pipelines.providers.realtime_http import RawResponse
from batch_pipelines.wire.errors import ProviderError
from batch_pipelines.wire.pricing import ModelPrice
from batch_pipelines.wire.requests import BatchRequest, BatchResult

CHARS_PER_TOKEN = 3.5  # a little below the usual ~4, so estimates err on the high side
MESSAGE_OVERHEAD_TOKENS = 4


@dataclass(frozen=True, slots=True)
class Budget:
    """One limit (requests or tokens) as the provider reported it: ``remaining`` now, full in ``reset_s``."""

    limit: int
    remaining: int
    reset_s: float

    @property
    def refill_per_second(self) -> float:
        """How fast the budget comes back, from what is used and when it will be full again."""
        used = self.limit - self.remaining
        if used <= 0 or self.reset_s <= 0:
            return math.inf
        return used / self.reset_s


@dataclass(frozen=True, slots=True)
class RateLimitSnapshot:
    """The provider's budget after one call; either dimension may be unknown."""

    requests: Budget | None
    tokens: Budget | None


@dataclass(slots=True)
class RealtimeAnswer:
    """A successful call: the result (``id`` is the request's), the tokens the provider's limiter counted,
    and the budget it reported."""

    result: BatchResult
    limit_tokens: int
    rate_limits: RateLimitSnapshot | None


class RealtimeCallError(ProviderError):
    """A failed realtime call, with the budget the provider reported alongside the error."""

    rate_limits: RateLimitSnapshot | None = None
    retry_after_s: float | None = None


class RealtimeProvider(Protocol):
    """A provider's synchronous API. Implementations: OpenAIRealtimeProvider (also any OpenAI-compatible
    server such as vLLM, by ``base_url``), AnthropicRealtimeProvider."""

    name: str
    model: str
    price: ModelPrice | None

    def estimate_tokens(self, request: BatchRequest) -> int:
        """Tokens the provider's rate limiter will count for ``request``, estimated before sending it."""
        ...

    async def call(self, request: BatchRequest, response_schema: dict[str, Any] | None) -> RealtimeAnswer:
        """Send one request; raise RealtimeCallError when the provider refuses or fails it."""
        ...

    async def aclose(self) -> None: ...


def estimate_prompt_tokens(request: BatchRequest) -> int:
    """A tokenizer-free estimate of a request's prompt, on the high side of what providers count."""
    texts: list[str] = []
    if request.input is not None:
        texts.append(request.input)
    if request.system is not None:
        texts.append(request.system)
    for message in request.messages or ():
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return sum(math.ceil(len(text) / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS for text in texts) + (
        MESSAGE_OVERHEAD_TOKENS
    )


def call_error(
    provider: str, path: str, response: RawResponse, rate_limits: RateLimitSnapshot | None
) -> RealtimeCallError:
    """The RealtimeCallError for a response with status >= 400, classified like every provider error."""
    base = error_from_answer(provider, response.status, response.headers, response.body, f"POST {path}")
    error = RealtimeCallError(
        str(base.args[0]),
        provider=provider,
        status_code=base.status_code,
        error_type=base.error_type,
        retryable=base.retryable,
    )
    error.rate_limits = rate_limits
    error.retry_after_s = getattr(base, "retry_after_s", None)
    return error


def header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def seconds_until(timestamp: float) -> float:
    return max(0.0, timestamp - time.time())
