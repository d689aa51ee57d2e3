"""`RateLimiter`: wait for one request's share of a shared requests-and-tokens budget, then correct it."""

from __future__ import annotations

import asyncio
import random
import threading
import time
import weakref
from dataclasses import dataclass

import anyio

from batch_pipelines.ratelimit.backends import open_backend
from batch_pipelines.ratelimit.backends.base import LimiterBackend
from batch_pipelines.ratelimit.gcra import Decision
from batch_pipelines.ratelimit.policy import LimitPolicy, RequestTooLargeError

DEFAULT_KEY = "openai:gpt-4o-mini"

# Waiters in different processes that computed the same wake-up time would otherwise all wake together
# and race; a little randomness lets a different one win each time. Never more than this, so the
# budget stays used.
_MAX_JITTER_SECONDS = 0.005
_MIN_JITTER_SECONDS = 0.0002


@dataclass
class Reservation:
    """One admitted request: the key it drew on, the tokens it holds and when it was admitted.

    ``admitted_at`` is on the backend's clock: Redis server time, the machine's wall clock for SQLite,
    the process's monotonic clock for memory.
    """

    key: str
    tokens: int
    admitted_at: float
    waited_seconds: float


def _sleep_seconds(wait_seconds: float) -> float:
    return wait_seconds + random.uniform(
        _MIN_JITTER_SECONDS, max(_MIN_JITTER_SECONDS, min(_MAX_JITTER_SECONDS, wait_seconds / 10))
    )


class RateLimiter:
    """A requests-per-period and tokens-per-period limit shared by everyone using the same backend and key.

    ``acquire(tokens)`` takes one request and ``tokens`` tokens in one atomic backend decision — both or
    neither — sleeping exactly as long as the bucket state says is needed between attempts. Within one
    process waiters queue first-come first-served, so only one of them asks the backend at a time.
    """

    def __init__(self, backend: LimiterBackend, policy: LimitPolicy, key: str = DEFAULT_KEY) -> None:
        self.backend = backend
        self.policy = policy
        self.key = key
        self._decisions = 0
        self._sync_lock = threading.Lock()
        self._async_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        requests_per_minute: float,
        tokens_per_minute: float,
        key: str = DEFAULT_KEY,
        burst_seconds: float = 1.0,
        period_seconds: float = 60.0,
    ) -> RateLimiter:
        """Open a limiter on ``memory://``, ``sqlite:///file.db`` (``sqlite:////abs.db``) or ``redis://host:port/db``.

        The limits count per ``period_seconds``: 60 in production; tests shorten it to compress time.
        """
        policy = LimitPolicy(
            requests_per_period=requests_per_minute,
            tokens_per_period=tokens_per_minute,
            period_seconds=period_seconds,
            burst_seconds=burst_seconds,
        )
        return cls(open_backend(url), policy, key)

    @property
    def decisions(self) -> int:
        """How many decisions this limiter has asked its backend for (admitted or not)."""
        return self._decisions

    async def acquire(self, tokens: int) -> Reservation:
        """Wait until one request and ``tokens`` tokens fit, take them, and return the reservation."""
        reservation = await self.try_acquire(tokens, max_wait_seconds=float("inf"))
        assert reservation is not None
        return reservation

    def acquire_sync(self, tokens: int) -> Reservation:
        """Blocking ``acquire`` for threads and synchronous code."""
        reservation = self.try_acquire_sync(tokens, max_wait_seconds=float("inf"))
        assert reservation is not None
        return reservation

    async def try_acquire(self, tokens: int, max_wait_seconds: float = 0.0) -> Reservation | None:
        """Like ``acquire``, but take nothing and return None if it would wait over ``max_wait_seconds``."""
        self._check_fits(tokens)
        started = time.monotonic()
        async with self._async_lock():
            while True:
                # Shielded: a decision the backend took must reach the caller, not vanish with a cancel.
                with anyio.CancelScope(shield=True):
                    decision = await self.backend.decide_async(self.key, self.policy, tokens)
                self._decisions += 1
                reservation = self._admitted(decision, tokens, started)
                if reservation is not None:
                    return reservation
                if time.monotonic() - started + decision.wait_seconds > max_wait_seconds:
                    return None
                await anyio.sleep(_sleep_seconds(decision.wait_seconds))

    def try_acquire_sync(self, tokens: int, max_wait_seconds: float = 0.0) -> Reservation | None:
        """Blocking ``try_acquire``."""
        self._check_fits(tokens)
        started = time.monotonic()
        with self._sync_lock:
            while True:
                decision = self.backend.decide(self.key, self.policy, tokens)
                self._decisions += 1
                reservation = self._admitted(decision, tokens, started)
                if reservation is not None:
                    return reservation
                if time.monotonic() - started + decision.wait_seconds > max_wait_seconds:
                    return None
                time.sleep(_sleep_seconds(decision.wait_seconds))

    async def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Correct a reservation with the tokens really used: give back the surplus or take the shortfall.

        Settling the same reservation again corrects relative to the previous settlement. A give-back is
        exact while the reservation's tokens are still draining from the bucket, so settle soon after the
        call; one that arrives after the bucket has emptied past them can let up to the surplus in early.
        """
        delta = self._settlement(reservation, actual_tokens)
        if delta:
            await self.backend.adjust_async(self.key, self.policy, 0, delta)
        reservation.tokens = actual_tokens

    def settle_sync(self, reservation: Reservation, actual_tokens: int) -> None:
        """Blocking ``settle``."""
        delta = self._settlement(reservation, actual_tokens)
        if delta:
            self.backend.adjust(self.key, self.policy, 0, delta)
        reservation.tokens = actual_tokens

    def close(self) -> None:
        self.backend.close()

    async def close_async(self) -> None:
        await self.backend.close_async()

    def _check_fits(self, tokens: int) -> None:
        if tokens < 0:
            raise ValueError(f"rate limiter {self.key!r}: tokens must be zero or more, got {tokens}")
        if tokens > self.policy.tokens_per_period:
            raise RequestTooLargeError(
                self.key, tokens, self.policy.tokens_per_period, self.policy.period_seconds
            )

    def _settlement(self, reservation: Reservation, actual_tokens: int) -> int:
        if reservation.key != self.key:
            raise ValueError(f"reservation for {reservation.key!r} settled on the limiter for {self.key!r}")
        if actual_tokens < 0:
            raise ValueError(
                f"rate limiter {self.key!r}: actual_tokens must be zero or more, got {actual_tokens}"
            )
        return actual_tokens - reservation.tokens

    def _admitted(self, decision: Decision, tokens: int, started: float) -> Reservation | None:
        if not decision.admitted:
            return None
        return Reservation(
            key=self.key, tokens=tokens, admitted_at=decision.now, waited_seconds=time.monotonic() - started
        )

    def _async_lock(self) -> anyio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._async_locks.get(loop)
        if lock is None:
            lock = self._async_locks[loop] = anyio.Lock()
        return lock
