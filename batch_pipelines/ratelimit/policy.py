"""The numbers that define one shared budget, and the error for a request that can never fit it."""

from __future__ import annotations

from dataclasses import dataclass


class RequestTooLargeError(ValueError):
    """A single request asks for more tokens than the whole per-period token limit."""

    def __init__(self, key: str, tokens: int, tokens_per_period: float, period_seconds: float) -> None:
        super().__init__(
            f"rate limiter {key!r}: a request for {tokens} tokens can never be admitted, because the token "
            f"limit is {tokens_per_period:g} per {period_seconds:g} s; split the request or raise "
            f"tokens_per_minute"
        )
        self.key = key
        self.tokens = tokens
        self.tokens_per_period = tokens_per_period


# How RateLimiter.from_url and the Dagster resource name these settings.
_CALLER_NAMES = {
    "requests_per_period": "requests_per_minute",
    "tokens_per_period": "tokens_per_minute",
    "period_seconds": "period_seconds",
    "burst_seconds": "burst_seconds",
}


@dataclass(frozen=True)
class LimitPolicy:
    """Requests and tokens allowed per period, and how much burst a full bucket allows.

    Both limits are generic cell-rate (token bucket) limits refilled continuously. A bucket holds
    ``burst_seconds`` worth of its limit (at least one request), so over any interval of length ``L``
    the limiter admits at most ``limit * L / period + burst`` — where the token burst is the larger of
    ``burst_seconds`` worth of tokens and the largest single request, because a request bigger than the
    bucket is admitted once the bucket is full.
    """

    requests_per_period: float
    tokens_per_period: float
    period_seconds: float = 60.0
    burst_seconds: float = 1.0

    def __post_init__(self) -> None:
        for field_name, caller_name in _CALLER_NAMES.items():
            value = getattr(self, field_name)
            if not value > 0:
                raise ValueError(
                    f"rate limit setting {caller_name!r} must be a positive number, got {value!r}"
                )

    @property
    def request_interval(self) -> float:
        """Seconds of budget one request uses."""
        return self.period_seconds / self.requests_per_period

    @property
    def token_interval(self) -> float:
        """Seconds of budget one token uses."""
        return self.period_seconds / self.tokens_per_period

    @property
    def request_tolerance(self) -> float:
        """How far ahead (seconds) the request bucket may be booked: the burst, and never less than one."""
        return max(self.burst_seconds, self.request_interval)

    @property
    def token_tolerance(self) -> float:
        return self.burst_seconds

    @property
    def request_burst(self) -> float:
        """Requests a full bucket admits at once."""
        return self.request_tolerance / self.request_interval

    @property
    def token_burst(self) -> float:
        """Tokens a full bucket admits at once (a larger single request still fits an empty bucket)."""
        return self.token_tolerance / self.token_interval
