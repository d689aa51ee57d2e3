"""The HTTP client shared by the provider modules: retries, provider error messages, no leaked keys.

Transient failures (connection errors, 408, 409, 429, 5xx, or ``x-should-retry: true``) are retried with
tenacity: the wait is the server's ``retry-after-ms`` / ``retry-after`` when given, else exponential
backoff with jitter; attempts are bounded. Anything else raises :class:`ProviderError` at once with the
provider's own message. Request headers (where the key lives) are never put into errors or logs.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)
from tenacity.wait import wait_base, wait_exponential_jitter

from batch_pipelines.wire.errors import ProviderError, classify

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 409, 429})
# Answers that say the server did nothing, so even a non-idempotent call may be sent again.
NOT_ACTED_ON_STATUS = frozenset({408, 429, 529})
MAX_SERVER_WAIT_S = 60.0
# A 429 that waiting never fixes: a request larger than the limit, or an account out of quota or credit.
PERMANENT_DESPITE_STATUS = frozenset({"request_too_large", "billing"})
BILLING_ADVICE = (
    "Retrying will not help: add credit or raise the usage limit of the account this API key belongs to "
    "(OpenAI: Settings > Billing / Limits; Anthropic: Console > Plans & Billing), then run again."
)


class RetryAfterOrBackoff(wait_base):
    """Wait what the server asked for, else exponential backoff with jitter."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.backoff = wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if isinstance(error, ProviderError):
            asked = getattr(error, "retry_after_s", None)
            if asked is not None:
                return float(min(max(asked, 0.0), MAX_SERVER_WAIT_S))
        return float(self.backoff(retry_state))


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The delay the server asked for, from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP
    date); None when neither is there or readable (a malformed value means the usual backoff)."""
    millis = _finite_seconds(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _finite_seconds(value)
    if seconds is not None:
        return seconds
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(parsed.timestamp() - time.time(), 0.0)


def _finite_seconds(text: str | None) -> float | None:
    """A non-negative finite number of seconds, or None ('nan', 'inf', '-3', 'soon' and '' included)."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def error_from_response(provider: str, response: httpx.Response, body: bytes) -> ProviderError:
    """A ProviderError carrying the provider's message, type and whether a retry may help."""
    where = f"{response.request.method} {response.request.url.path}"
    return error_from_answer(provider, response.status_code, response.headers, body, where)


def error_from_answer(
    provider: str, status_code: int, headers: Mapping[str, str], body: bytes, where: str
) -> ProviderError:
    """``error_from_response`` for an answer already read: its status, (case-insensitive) headers and
    body; ``where`` (method and path) names the call when the body carries no message."""
    message, code = _error_fields(body)
    if not message:
        message = f"{where} answered {status_code}"
    error_type, retryable = classify(code, message, status_code)
    retryable = status_code in RETRYABLE_STATUS or status_code >= 500
    should_retry = headers.get("x-should-retry")
    if should_retry == "true":
        retryable = True
    elif should_retry == "false":
        retryable = False
    if error_type in PERMANENT_DESPITE_STATUS:
        retryable = False
    if error_type == "billing":
        message = f"{message} {BILLING_ADVICE}"
    error = ProviderError(
        message,
        provider=provider,
        status_code=status_code,
        error_type=error_type,
        retryable=retryable,
    )
    error.retry_after_s = retry_after_seconds(headers)  # type: ignore[attr-defined]
    return error


def _error_fields(body: bytes) -> tuple[str, str | None]:
    try:
        payload = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")[:500], None
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return str(payload)[:500], None
    code = error.get("code") or error.get("type")
    return str(error.get("message") or ""), str(code) if code else None


class ProviderHTTP:
    """An httpx.AsyncClient bound to one provider's base URL and auth headers, with retries."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        *,
        timeout_s: float = 60.0,
        max_attempts: int = 6,
        initial_wait_s: float = 0.5,
        max_wait_s: float = 8.0,
        limits: httpx.Limits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.provider = provider
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=dict(headers),
            timeout=timeout_s,
            limits=limits or httpx.Limits(),
            transport=transport,
        )
        self._max_attempts = max_attempts
        self._wait = RetryAfterOrBackoff(initial_wait_s, max_wait_s)

    def __repr__(self) -> str:
        return f"ProviderHTTP({self.provider!r}, {str(self._client.base_url)!r})"

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, ProviderError) and e.retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )

    def _log_retry(self, retry_state: RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        logger.warning(
            "%s call failed (attempt %d), retrying: %s", self.provider, retry_state.attempt_number, error
        )

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        build: Callable[[], dict[str, Any]] | None = None,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Send a request and decode its JSON answer. ``build`` makes fresh keyword arguments per attempt
        (for bodies that are streams and cannot be sent twice).

        ``idempotent=False`` (creating a batch) retries only failures that prove the server did not act
        (connection refused, 408, 429, 529); a timeout or 5xx after sending raises, and the caller looks
        the object up before trying again, so a lost answer never yields a second batch."""
        async for attempt in self._retrying():
            with attempt:
                extra = build() if build is not None else {}
                response = await self._send(method, path, idempotent=idempotent, **kwargs, **extra)
                return response.json()
        raise AssertionError("unreachable")  # pragma: no cover

    async def send_once(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One attempt, no retries and no status check: the response whatever its status; a transport
        failure is a retryable ProviderError. For callers that retry around a rate limiter themselves."""
        try:
            return await self._client.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise ProviderError(
                f"{method} {path}: {type(error).__name__}: {error}",
                provider=self.provider,
                error_type="connection",
                retryable=True,
            ) from None

    async def _send(
        self, method: str, path: str, *, idempotent: bool = True, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.TransportError as failure:
            never_sent = isinstance(failure, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
            raise ProviderError(
                f"{method} {path}: {type(failure).__name__}: {failure}",
                provider=self.provider,
                error_type="connection",
                retryable=idempotent or never_sent,
            ) from None
        if response.status_code >= 400:
            refused = error_from_response(self.provider, response, response.content)
            if not idempotent and response.status_code not in NOT_ACTED_ON_STATUS:
                refused.retryable = False
            raise refused
        return response

    @asynccontextmanager
    async def _open_stream(self, path: str) -> AsyncIterator[httpx.Response]:
        async for attempt in self._retrying():
            with attempt:
                request = self._client.build_request("GET", path)
                try:
                    response = await self._client.send(request, stream=True)
                except httpx.TransportError as error:
                    raise ProviderError(
                        f"GET {path}: {type(error).__name__}: {error}",
                        provider=self.provider,
                        error_type="connection",
                        retryable=True,
                    ) from None
                if response.status_code >= 400:
                    body = await response.aread()
                    await response.aclose()
                    raise error_from_response(self.provider, response, body)
        try:
            yield response
        finally:
            await response.aclose()

    async def stream_lines(self, path: str) -> AsyncIterator[bytes]:
        """The non-empty lines of a (possibly large) body, without holding it all in memory."""
        async with self._open_stream(path) as response:
            pending = b""
            async for chunk in response.aiter_bytes(1 << 16):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield line
            if pending.strip():
                yield pending

    async def aclose(self) -> None:
        await self._client.aclose()
