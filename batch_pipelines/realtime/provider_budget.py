"""Adaptive pacing from the provider's own rate-limit headers: never ask for more than it says is left.

The shared limiter keeps every worker inside the configured limits; the provider's headers are the truth
when those limits are set too high or another client spends from the same account. Each answer reports
``remaining`` and when the budget is full again; from the answer to the request sent most recently we
project the budget forward (it refills at ``(limit - remaining) / reset`` per second) and subtract what
this process has sent since. A request that would not fit waits until it does.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import anyio

from batch_pipelines.providers.realtime import Budget, RateLimitSnapshot

MAX_WAIT_S = 60.0


class ProviderBudget:
    """One process's view of the provider's remaining budget. Not shared between processes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._snapshot: RateLimitSnapshot | None = None
        self._snapshot_sent_at = float("-inf")
        self._sent: deque[tuple[float, int]] = deque()  # (sent_at, tokens) of requests after the snapshot
        self._last_sent_at = float("-inf")

    @property
    def known(self) -> bool:
        return self._snapshot is not None

    def observe(self, sent_at: float, snapshot: RateLimitSnapshot | None) -> None:
        """Take the budget reported in the answer to a request sent at ``sent_at`` (if it is the newest)."""
        if snapshot is None or sent_at <= self._snapshot_sent_at:
            return
        self._snapshot = snapshot
        self._snapshot_sent_at = sent_at
        while self._sent and self._sent[0][0] <= sent_at:
            self._sent.popleft()

    def wait_seconds(self, tokens: int) -> float:
        """How long a request of ``tokens`` must wait to fit the projected budget (0: send now)."""
        snapshot = self._snapshot
        if snapshot is None:
            return 0.0
        elapsed = self._clock() - self._snapshot_sent_at
        sent_requests = len(self._sent)
        sent_tokens = sum(amount for _, amount in self._sent)
        waits = [
            _wait(snapshot.requests, elapsed, sent_requests, 1),
            _wait(snapshot.tokens, elapsed, sent_tokens, tokens),
        ]
        return min(max(waits), MAX_WAIT_S)

    def record_send(self, tokens: int) -> float:
        """Note a request about to be sent; returns its send time (pass it to ``observe``)."""
        now = max(self._clock(), self._last_sent_at + 1e-9)  # distinct, increasing send times
        self._last_sent_at = now
        self._sent.append((now, tokens))
        return now

    async def reserve(self, tokens: int) -> float:
        """Wait until ``tokens`` fit what the provider has left, then record the send."""
        while True:
            wait = self.wait_seconds(tokens)
            if wait <= 0:
                return self.record_send(tokens)
            await anyio.sleep(wait)


def _wait(budget: Budget | None, elapsed: float, spent_since: int, wanted: int) -> float:
    if budget is None:
        return 0.0
    rate = budget.refill_per_second
    projected = min(budget.limit, budget.remaining + rate * elapsed) - spent_since
    if projected >= wanted or wanted > budget.limit:
        return 0.0
    return (wanted - projected) / rate
