"""What stands between a realtime request and the model: the per-key rate limits and injected faults.

``admit`` either returns the rate-limit headers to put on the answer, or raises the provider's error
(429 with retry headers, an injected 5xx/529); it may also sleep (slow) or drop the connection.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from batch_pipelines.emulator.config import REALTIME_FAULTS
from batch_pipelines.emulator.errors import ApiError
from batch_pipelines.emulator.faults import fault_error
from batch_pipelines.emulator.rate_limiter import Budget, Decision
from batch_pipelines.emulator.runtime import Runtime
from batch_pipelines.emulator.wire import drop_connection, go_duration, rfc3339

RATE_LIMIT_DOCS = "Visit https://platform.openai.com/account/rate-limits to learn more."


class ConnectionDropped(Exception):
    """The emulator closed the connection on purpose; the route must not answer."""


class RealtimeGate:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def admit(
        self, provider: str, key: str, model: str, tokens: int, request_text: str, send: Any
    ) -> dict[str, str]:
        config = self.runtime.config
        limits = config.rate_limits.for_key(key)
        headers: dict[str, str] = {}
        if limits.rpm or limits.tpm:
            decision = self.runtime.limiter.check(key, limits.rpm, limits.tpm, tokens)
            headers = _openai_headers(decision) if provider == "openai" else _anthropic_headers(decision)
            if not decision.allowed:
                self.runtime.counters["rate_limited_429"] += 1
                raise _rate_limit_error(provider, model, tokens, decision, headers)
        fault = self.runtime.faults.realtime_fault(
            request_text, config.faults.realtime_error_rates, REALTIME_FAULTS
        )
        if fault is None:
            return headers
        self.runtime.counters[f"faults.{fault}"] += 1
        if fault == "slow":
            await asyncio.sleep(config.scaled(config.faults.slow_response_s))
            return headers
        if fault == "drop_connection":
            await drop_connection(send)
            raise ConnectionDropped
        error = fault_error(fault, provider, model)
        if fault == "rate_limited":
            self.runtime.counters["rate_limited_429"] += 1
            error.headers.update({"retry-after": "1", "retry-after-ms": "1000"})
        error.headers.update(headers)
        raise error


def _openai_headers(decision: Decision) -> dict[str, str]:
    headers = {}
    for name, budget in (("requests", decision.requests), ("tokens", decision.tokens)):
        if budget is not None:
            headers[f"x-ratelimit-limit-{name}"] = str(budget.limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(budget.remaining)
            headers[f"x-ratelimit-reset-{name}"] = go_duration(budget.reset_s)
    return headers


def _anthropic_headers(decision: Decision) -> dict[str, str]:
    now = time.time()
    headers = {}
    dimensions: list[tuple[str, Budget | None]] = [
        ("requests", decision.requests),
        ("tokens", decision.tokens),
        ("input-tokens", decision.tokens),
        ("output-tokens", decision.tokens),
    ]
    for name, budget in dimensions:
        if budget is not None:
            headers[f"anthropic-ratelimit-{name}-limit"] = str(budget.limit)
            headers[f"anthropic-ratelimit-{name}-remaining"] = str(budget.remaining)
            headers[f"anthropic-ratelimit-{name}-reset"] = str(rfc3339(now + budget.reset_s))
    return headers


def _rate_limit_error(
    provider: str, model: str, tokens: int, decision: Decision, headers: dict[str, str]
) -> ApiError:
    wait = decision.retry_after_s
    if decision.too_large:
        limit = decision.tokens.limit if decision.tokens else 0
        if provider == "anthropic":
            message = (
                f"Request too large: its {tokens:,} tokens exceed your organization's rate limit of "
                f"{limit:,} input tokens per minute for {model}, so it can never succeed. "
                "Reduce the prompt length or the maximum tokens requested."
            )
            return ApiError(429, message, headers=headers)
        message = (
            f"Request too large for {model} in organization org-emulator on tokens per min (TPM): "
            f"Limit {limit}, Requested {tokens}. "
            "The input or output tokens must be reduced in order to run successfully. " + RATE_LIMIT_DOCS
        )
        return ApiError(429, message, code="rate_limit_exceeded", kind="tokens", headers=headers)
    retry_headers = {
        "retry-after": str(max(1, math.ceil(wait))),
        "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
    }
    if provider == "anthropic":
        dimension = "requests" if decision.limited_by == "requests" else "input tokens"
        message = (
            f"This request would exceed the rate limit for your organization of {dimension} per minute "
            f"for {model}. Please try again later or reduce the request rate."
        )
        return ApiError(429, message, headers={**headers, **retry_headers})
    if decision.limited_by == "requests":
        budget = decision.requests
        limit = budget.limit if budget else 0
        detail = f"on requests per min (RPM): Limit {limit}, Used {limit}, Requested 1."
    else:
        budget = decision.tokens
        limit = budget.limit if budget else 0
        detail = f"on tokens per min (TPM): Limit {limit}, Used {decision.used_tokens}, Requested {tokens}."
    message = (
        f"Rate limit reached for {model} in organization org-emulator {detail} "
        f"Please try again in {go_duration(wait)}. {RATE_LIMIT_DOCS}"
    )
    return ApiError(
        429,
        message,
        code="rate_limit_exceeded",
        kind=decision.limited_by,
        headers={**headers, **retry_headers},
    )
