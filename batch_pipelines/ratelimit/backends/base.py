"""What every limiter backend provides: one atomic decision and one atomic correction per call."""

from __future__ import annotations

from typing import Protocol

from batch_pipelines.ratelimit.gcra import Decision
from batch_pipelines.ratelimit.policy import LimitPolicy


class LimiterBackend(Protocol):
    def decide(self, key: str, policy: LimitPolicy, tokens: int) -> Decision:
        """Atomically take one request and ``tokens`` tokens if both fit now, else take nothing."""
        ...

    async def decide_async(self, key: str, policy: LimitPolicy, tokens: int) -> Decision: ...

    def adjust(self, key: str, policy: LimitPolicy, requests: int, tokens: int) -> None:
        """Atomically take more (positive) or give back (negative) without waiting."""
        ...

    async def adjust_async(self, key: str, policy: LimitPolicy, requests: int, tokens: int) -> None: ...

    def close(self) -> None: ...

    async def close_async(self) -> None: ...
