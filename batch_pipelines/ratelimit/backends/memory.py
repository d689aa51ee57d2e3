"""One process's limiter state in a dict: two numbers per key, guarded by a lock."""

from __future__ import annotations

import threading
import time

from batch_pipelines.ratelimit import gcra
from batch_pipelines.ratelimit.gcra import BucketState, Decision
from batch_pipelines.ratelimit.policy import LimitPolicy


class MemoryBackend:
    def __init__(self) -> None:
        self._states: dict[str, BucketState] = {}
        self._lock = threading.Lock()

    def decide(self, key: str, policy: LimitPolicy, tokens: int) -> Decision:
        with self._lock:
            now = time.monotonic()
            state, decision = gcra.decide(self._state(key, now), now, policy, tokens)
            self._states[key] = state
            return decision

    async def decide_async(self, key: str, policy: LimitPolicy, tokens: int) -> Decision:
        return self.decide(key, policy, tokens)

    def adjust(self, key: str, policy: LimitPolicy, requests: int, tokens: int) -> None:
        with self._lock:
            now = time.monotonic()
            self._states[key] = gcra.adjust(self._state(key, now), now, policy, requests, tokens)

    async def adjust_async(self, key: str, policy: LimitPolicy, requests: int, tokens: int) -> None:
        self.adjust(key, policy, requests, tokens)

    def close(self) -> None:
        with self._lock:
            self._states.clear()

    async def close_async(self) -> None:
        self.close()

    def _state(self, key: str, now: float) -> BucketState:
        return self._states.get(key) or BucketState.full(now)
