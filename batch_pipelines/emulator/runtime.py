"""Everything one emulator process holds: its config, stored state, limiter, faults, scenarios, counters."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batch_pipelines.emulator.config import EmulatorConfig
from batch_pipelines.emulator.faults import FaultInjector
from batch_pipelines.emulator.prompt_cache import PromptCache
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
    prompt_cache: PromptCache
    scenarios: deque[QueuedScenario] = field(default_factory=deque)
    counters: Counter[str] = field(default_factory=Counter)

    @classmethod
    def create(cls, config: EmulatorConfig, state_dir: Path | None) -> Runtime:
        return cls(
            config=config,
            store=Store(state_dir),
            faults=FaultInjector(config.seed),
            limiter=RateLimiter(config.rate_limits.window_s),
            prompt_cache=_prompt_cache(config),
        )

    def replace_config(self, config: EmulatorConfig) -> None:
        if config.seed != self.config.seed:
            self.faults = FaultInjector(config.seed)
        if config.rate_limits != self.config.rate_limits:
            self.limiter = RateLimiter(config.rate_limits.window_s)
        if config.model != self.config.model:
            self.prompt_cache = _prompt_cache(config)
        self.config = config

    def bill(self, provider: str, channel: str, answers: Iterable[Mapping[str, Any]]) -> None:
        """Count what the answers (response bodies with ``model`` and ``usage``) are billed: their input and
        output tokens, per provider, channel (``realtime`` or ``batch``) and model. Failures are free."""
        for answer in answers:
            usage = answer.get("usage") or {}
            prefix = f"billed.{provider}.{channel}.{answer.get('model', '')}."
            self.counters[prefix + "requests"] += 1
            self.counters[prefix + "input_tokens"] += int(
                usage.get("prompt_tokens") or usage.get("input_tokens") or 0
            )
            self.counters[prefix + "output_tokens"] += int(
                usage.get("completion_tokens") or usage.get("output_tokens") or 0
            )

    def billed(self) -> dict[str, Any]:
        """provider -> channel -> model -> {requests, input_tokens, output_tokens}."""
        usage: dict[str, Any] = {}
        for key, value in self.counters.items():
            if key.startswith("billed."):
                provider, channel, rest = key[len("billed.") :].split(".", 2)
                model, measure = rest.rsplit(".", 1)
                usage.setdefault(provider, {}).setdefault(channel, {}).setdefault(model, {})[measure] = value
        return usage

    def take_scenario(self, provider: str) -> str | None:
        for queued in list(self.scenarios):
            if queued.provider in (None, provider):
                self.scenarios.remove(queued)
                return queued.name
        return None


def _prompt_cache(config: EmulatorConfig) -> PromptCache:
    return PromptCache(config.model.chars_per_token, config.model.prompt_cache_min_tokens)
