"""Everything one emulator process holds: its config, stored state, limiter, faults, scenarios, counters."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

from batch_pipelines.emulator.config import EmulatorConfig
from batch_pipelines.emulator.faults import FaultInjector
from batch_pipelines.emulator.rate_limiter import RateLimiter
from batch_pipelines.emulator.store import Store

SCENARIOS = ("expire_half", "expire_all", "fail_validation", "token_limit_exceeded", "stuck_finalizing")


@dataclass(frozen=True)
class QueuedScenario:
    name: str
    provider: str | None  # None: the next batch of either provider


@dataclass
class Runtime:
    config: EmulatorConfig
    store: Store
    faults: FaultInjector
    limiter: RateLimiter
    scenarios: deque[QueuedScenario] = field(default_factory=deque)
    counters: Counter[str] = field(default_factory=Counter)

    @classmethod
    def create(cls, config: EmulatorConfig, state_dir: Path | None) -> Runtime:
        return cls(
            config=config,
            store=Store(state_dir),
            faults=FaultInjector(config.seed),
            limiter=RateLimiter(config.rate_limits.window_s),
        )

    def replace_config(self, config: EmulatorConfig) -> None:
        if config.seed != self.config.seed:
            self.faults = FaultInjector(config.seed)
        if config.rate_limits != self.config.rate_limits:
            self.limiter = RateLimiter(config.rate_limits.window_s)
        self.config = config

    def take_scenario(self, provider: str) -> str | None:
        for queued in list(self.scenarios):
            if queued.provider in (None, provider):
                self.scenarios.remove(queued)
                return queued.name
        return None
