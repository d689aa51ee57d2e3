"""The limiter's decision, as pure arithmetic on two numbers per key.

Each limit keeps a theoretical arrival time (TAT): the moment its bucket would be full again. Taking
``w`` units moves it ``w * interval`` later; a request fits when both moved TATs stay within their
tolerance of now. The memory and SQLite backends run this module; the Redis backend runs the same
arithmetic in Lua (``backends/redis.py``), and the backend tests hold the two to the same behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass

from batch_pipelines.ratelimit.policy import LimitPolicy


@dataclass(frozen=True)
class BucketState:
    request_tat: float
    token_tat: float

    @classmethod
    def full(cls, now: float) -> BucketState:
        return cls(request_tat=now, token_tat=now)


@dataclass(frozen=True)
class Decision:
    """What the backend decided at ``now`` (seconds on the backend's clock)."""

    admitted: bool
    now: float
    wait_seconds: float


def _earliest_start(tat: float, units: float, interval: float, tolerance: float) -> float:
    # A request larger than the bucket (units * interval > tolerance) waits for a full bucket.
    return tat + min(0.0, units * interval - tolerance)


def _moved(tat: float, now: float, units: float, interval: float) -> float:
    # A TAT in the past means a full bucket; giving back never credits beyond full.
    return max(max(tat, now) + units * interval, now)


def decide(state: BucketState, now: float, policy: LimitPolicy, tokens: int) -> tuple[BucketState, Decision]:
    """Take one request and ``tokens`` tokens if both fit now; else take nothing and say how long to wait."""
    start = max(
        _earliest_start(state.request_tat, 1, policy.request_interval, policy.request_tolerance),
        _earliest_start(state.token_tat, tokens, policy.token_interval, policy.token_tolerance),
    )
    if start > now:
        return state, Decision(admitted=False, now=now, wait_seconds=start - now)
    taken = BucketState(
        request_tat=_moved(state.request_tat, now, 1, policy.request_interval),
        token_tat=_moved(state.token_tat, now, tokens, policy.token_interval),
    )
    return taken, Decision(admitted=True, now=now, wait_seconds=0.0)


def adjust(state: BucketState, now: float, policy: LimitPolicy, requests: int, tokens: int) -> BucketState:
    """Take more (positive) or give back (negative) requests and tokens without waiting."""
    return BucketState(
        request_tat=_moved(state.request_tat, now, requests, policy.request_interval),
        token_tat=_moved(state.token_tat, now, tokens, policy.token_interval),
    )


def settled_at(state: BucketState) -> float:
    """When both buckets are full again, so the stored state can be forgotten."""
    return max(state.request_tat, state.token_tat)
