"""Per-key request and token budgets, replenished continuously like the providers' limiters.

Each key has two buckets (requests, tokens) whose capacity is the per-window limit and which refill at
``limit / window_s`` per second. A request takes from both or from neither.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    capacity: float
    level: float
    updated: float

    def refill(self, now: float, window_s: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.capacity / window_s)
        self.updated = now

    def seconds_until(self, amount: float, window_s: float) -> float:
        return max(0.0, (amount - self.level) * window_s / self.capacity)


@dataclass(frozen=True)
class Budget:
    """One dimension (requests or tokens) as reported in the rate-limit headers."""

    limit: int
    remaining: int
    reset_s: float


@dataclass(frozen=True)
class Decision:
    allowed: bool
    requests: Budget | None
    tokens: Budget | None
    limited_by: str | None = None  # "requests" or "tokens"
    retry_after_s: float = 0.0
    too_large: bool = False
    used_tokens: int = 0


@dataclass
class RateLimiter:
    window_s: float = 60.0
    _buckets: dict[tuple[str, str, float], _Bucket] = field(default_factory=dict)

    def _bucket(self, key: str, dimension: str, capacity: int, now: float) -> _Bucket:
        bucket = self._buckets.get((key, dimension, capacity))
        if bucket is None:
            bucket = self._buckets[(key, dimension, capacity)] = _Bucket(capacity, capacity, now)
        bucket.refill(now, self.window_s)
        return bucket

    def _budget(self, bucket: _Bucket | None) -> Budget | None:
        if bucket is None:
            return None
        reset = bucket.seconds_until(bucket.capacity, self.window_s)
        return Budget(int(bucket.capacity), max(0, int(bucket.level)), reset)

    def check(self, key: str, rpm: int | None, tpm: int | None, tokens: int) -> Decision:
        now = time.monotonic()
        requests = self._bucket(key, "requests", rpm, now) if rpm else None
        token_bucket = self._bucket(key, "tokens", tpm, now) if tpm else None
        if token_bucket is not None and tokens > token_bucket.capacity:
            return Decision(False, self._budget(requests), self._budget(token_bucket), "tokens", 0.0, True)
        if requests is not None and requests.level < 1:
            wait = requests.seconds_until(1, self.window_s)
            return Decision(False, self._budget(requests), self._budget(token_bucket), "requests", wait)
        if token_bucket is not None and token_bucket.level < tokens:
            wait = token_bucket.seconds_until(tokens, self.window_s)
            used = int(token_bucket.capacity - token_bucket.level)
            return Decision(
                False, self._budget(requests), self._budget(token_bucket), "tokens", wait, False, used
            )
        if requests is not None:
            requests.level -= 1
        if token_bucket is not None:
            token_bucket.level -= tokens
        return Decision(True, self._budget(requests), self._budget(token_bucket))
