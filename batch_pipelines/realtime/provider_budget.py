"""Adaptive pacing from the provider's own rate-limit headers: never ask for more than it says is left.

The shared limiter keeps every worker inside the configured limits; the provider's headers are the truth
when those limits are set too high or another client spends from the same account. Each answer reports
``remaining`` and when the budget is full again. From the newest answer we project the budget forward —
it refills at ``(limit - remaining) / reset`` per second, counted from when the answer arrived — and
subtract every request the report may not include: those still in flight when it arrived and those sent
since. Both choices err towards waiting; a request that would not fit waits until it does.

Waiters form a priority queue (highest priority first, then arrival order): only the head may send, and
it waits for the projected budget while the others wait for their turn. So when the provider's limit
binds, not ours, urgent items still go first. The head is woken early when a new report arrives or a
higher-priority request takes its place.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from batch_pipelines.providers.realtime import Budget, RateLimitSnapshot

MAX_WAIT_S = 60.0


@dataclass(order=True)
class _Waiter:
    rank: tuple[int, int]  # (-priority, arrival): the heap's smallest goes first
    wake: anyio.Event = field(default_factory=anyio.Event, compare=False)


class ProviderBudget:
    """One process's view of the provider's remaining budget. Not shared between processes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._snapshot: RateLimitSnapshot | None = None
        self._snapshot_at = 0.0
        self._tickets = itertools.count()
        self._in_flight: dict[int, int] = {}  # ticket -> tokens, sent and not answered yet
        self._unreported: dict[int, int] = {}  # ticket -> tokens the newest report may not include
        self._waiters: list[_Waiter] = []  # a heap: the head is the next request allowed to send
        self._arrivals = itertools.count()

    @property
    def known(self) -> bool:
        return self._snapshot is not None

    def record_send(self, tokens: int) -> int:
        """Note a request about to be sent; returns its ticket (pass it to ``observe`` with the answer)."""
        ticket = next(self._tickets)
        self._in_flight[ticket] = tokens
        self._unreported[ticket] = tokens
        return ticket

    def observe(self, ticket: int, snapshot: RateLimitSnapshot | None) -> None:
        """The answer to ``ticket`` arrived, reporting ``snapshot`` (None when it carried no headers)."""
        self._in_flight.pop(ticket, None)
        if snapshot is None:
            return
        self._snapshot = snapshot
        self._snapshot_at = self._clock()
        self._unreported = dict(self._in_flight)
        self._wake_head()  # the projection changed: the head's wait may be shorter or longer now

    def wait_seconds(self, tokens: int) -> float:
        """How long a request of ``tokens`` must wait to fit the projected budget (0: send now)."""
        snapshot = self._snapshot
        if snapshot is None:
            return 0.0
        elapsed = self._clock() - self._snapshot_at
        waits = [
            _wait(snapshot.requests, elapsed, len(self._unreported), 1),
            _wait(snapshot.tokens, elapsed, sum(self._unreported.values()), tokens),
        ]
        return min(max(waits), MAX_WAIT_S)

    async def reserve(self, tokens: int, priority: int = 0) -> int:
        """Wait until no higher-priority request is waiting and ``tokens`` fit what the provider has left,
        then record the send (its ticket)."""
        waiter = _Waiter((-priority, next(self._arrivals)))
        heapq.heappush(self._waiters, waiter)
        try:
            while True:
                wait = self.wait_seconds(tokens) if self._waiters[0] is waiter else math.inf
                if wait <= 0:
                    heapq.heappop(self._waiters)
                    return self.record_send(tokens)
                with anyio.move_on_after(wait):
                    await waiter.wake.wait()
                waiter.wake = anyio.Event()
        finally:
            if waiter in self._waiters:  # cancelled while waiting
                self._waiters.remove(waiter)
                heapq.heapify(self._waiters)
            self._wake_head()

    def _wake_head(self) -> None:
        if self._waiters:
            self._waiters[0].wake.set()


def _wait(budget: Budget | None, elapsed: float, spent_since: int, wanted: int) -> float:
    if budget is None:
        return 0.0
    rate = budget.refill_per_second
    projected = min(budget.limit, budget.remaining + rate * elapsed) - spent_since
    if projected >= wanted or wanted > budget.limit:
        return 0.0
    return (wanted - projected) / rate
