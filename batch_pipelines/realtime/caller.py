"""One request through the provider's synchronous API: limiter, adaptive pacing, bounded retries, cost.

Every attempt first takes one request and the estimated tokens from the shared limiter, then waits for
the provider's reported budget (``ProviderBudget``), sends, and settles the reservation with the tokens
the provider's limiter counted. Transient failures (429, 5xx, 529, timeouts, dropped connections) are
retried with tenacity: the server's ``retry-after-ms``/``retry-after`` when given, else exponential backoff
with jitter, at most ``max_attempts`` sends. Permanent failures are never retried. The outcome is always a
``BatchResult``: a failure is a result with ``error``, ``error_type`` and ``retryable`` set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from batch_pipelines.engine.errors import ProviderError
from batch_pipelines.engine.models import BatchRequest, BatchResult
from batch_pipelines.engine.results import ResultFinisher
from batch_pipelines.providers.http import RetryAfterOrBackoff
from batch_pipelines.providers.realtime import RealtimeCallError, RealtimeProvider
from batch_pipelines.ratelimit import RateLimiter, RequestTooLargeError
from batch_pipelines.realtime.provider_budget import ProviderBudget


@dataclass(slots=True)
class CallCounters:
    """What this process sent: HTTP requests (retries included), 429s among them, tokens and cost."""

    requests_sent: int = 0
    rate_limited: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class RealtimeCaller:
    """Sends requests for one provider and model, drawing on ``limiter`` (None: no shared limiter)."""

    def __init__(
        self,
        provider: RealtimeProvider,
        limiter: RateLimiter | None,
        *,
        max_attempts: int = 4,
        initial_wait_s: float = 0.5,
        max_wait_s: float = 8.0,
        adaptive: bool = True,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.provider = provider
        self.limiter = limiter
        self.max_attempts = max_attempts
        self.budget = ProviderBudget() if adaptive else None
        self.counters = CallCounters()
        # Compiling a schema validator per result would cost more than the call's parsing: one per schema.
        self._finishers: dict[int, tuple[dict[str, Any] | None, ResultFinisher]] = {}
        self._wait = RetryAfterOrBackoff(initial_wait_s, max_wait_s)

    async def call(
        self,
        request: BatchRequest,
        response_schema: dict[str, Any] | None = None,
        *,
        attempt: int = 1,
        priority: int = 0,
    ) -> BatchResult:
        """The request's result after retries; ``attempt`` is recorded on it (the queue's delivery count).
        Among requests waiting for the provider's budget, higher ``priority`` goes first."""
        try:
            result = await self._with_retries(request, response_schema, priority)
        except ProviderError as error:
            result = BatchResult(
                request.id, error=str(error.args[0]), error_type=error.error_type, retryable=error.retryable
            )
        return self._finish(result, response_schema, attempt)

    async def _with_retries(
        self, request: BatchRequest, response_schema: dict[str, Any] | None, priority: int
    ) -> BatchResult:
        # Most calls succeed at once: the first send goes without tenacity's per-call state, and only a
        # transient failure starts it, replaying that failure as its first attempt so its wait and stop
        # rules count it.
        try:
            return await self._send(request, response_schema, priority)
        except ProviderError as error:
            if not error.retryable:
                raise
            first_failure: ProviderError | None = error
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda error: isinstance(error, ProviderError) and error.retryable),
            before_sleep=self._count_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if first_failure is not None:
                    failure, first_failure = first_failure, None
                    raise failure
                return await self._send(request, response_schema, priority)
        raise AssertionError("unreachable")  # pragma: no cover

    def _count_retry(self, _state: Any) -> None:
        self.counters.retries += 1

    async def _send(
        self, request: BatchRequest, response_schema: dict[str, Any] | None, priority: int
    ) -> BatchResult:
        estimate = self.provider.estimate_tokens(request)
        reservation = None
        if self.limiter is not None:
            try:
                reservation = await self.limiter.acquire(estimate)
            except RequestTooLargeError as error:
                raise ProviderError(
                    str(error), provider=self.provider.name, error_type="request_too_large", retryable=False
                ) from None
        ticket = await self.budget.reserve(estimate, priority) if self.budget is not None else None
        self.counters.requests_sent += 1
        reported = None  # the budget the provider reported with its answer, if any
        try:
            answer = await self.provider.call(request, response_schema)
            reported = answer.rate_limits
        except RealtimeCallError as error:
            if error.status_code == 429:
                self.counters.rate_limited += 1
            reported = error.rate_limits
            raise
        except ValueError as error:  # the provider cannot express this request at all
            raise ProviderError(
                str(error), provider=self.provider.name, error_type="invalid_request", retryable=False
            ) from None
        finally:  # answered, refused, or lost on the way: either way no longer in flight
            if self.budget is not None and ticket is not None:
                self.budget.observe(ticket, reported)
        if reservation is not None and self.limiter is not None:
            await self.limiter.settle(reservation, answer.limit_tokens)
        return answer.result

    def _finish(
        self, result: BatchResult, response_schema: dict[str, Any] | None, attempt: int
    ) -> BatchResult:
        self._finisher(response_schema).finish(result)
        result.attempt = attempt
        price = self.provider.price
        if price is not None and (result.input_tokens or result.output_tokens):
            result.cost_usd = price.cost(
                result.input_tokens,
                result.output_tokens,
                batch=False,
                cached_input_tokens=result.cached_input_tokens,
                cache_write_input_tokens=result.cache_write_input_tokens,
            )
        self.counters.input_tokens += result.input_tokens
        self.counters.output_tokens += result.output_tokens
        self.counters.cost_usd += result.cost_usd or 0.0
        return result

    def _finisher(self, response_schema: dict[str, Any] | None) -> ResultFinisher:
        cached = self._finishers.get(id(response_schema))
        if cached is None or cached[0] is not response_schema:
            finisher = ResultFinisher(
                price=None, response_schema=response_schema, attempt=1, provider_batch_id=None
            )
            cached = self._finishers[id(response_schema)] = (response_schema, finisher)
        return cached[1]
