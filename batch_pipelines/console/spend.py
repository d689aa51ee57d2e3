"""Spend per pipeline, partition, model and path from the store: batch jobs and the realtime ledger.

`cost_usd` is what the provider charges for the usage it reported: a batch job's at the batch price, a
realtime call's (`realtime` or `packed` path) at the synchronous price. `realtime_usd` is the same tokens
at the synchronous price; `saved_usd` their difference (what the batch discount saved; nothing for
realtime calls) and `discount_pct` its share. `calls` counts realtime calls (a pack once).
`expected_usd` and `worst_case_usd` are the batch jobs' forecasts made before submission
(engine.forecast); their `*_error_pct` compare them with the bills of the jobs that have ended (positive:
forecast above the bill). Realtime calls have no forecast.
`cache_saved_usd` is what prompt caching took off a batch job's `cost_usd` (cache reads at their
discounted rate, less the premium of Anthropic cache writes), apart from the batch discount.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from batch_pipelines.engine import BatchJob
from batch_pipelines.engine.spend import SpendTotal

LEVELS = ("pipeline", "partition_key", "model", "path")
JOB_LEVEL = "job"  # one line per job: `cost --by job`
UNLABELLED = "(none)"


@dataclass
class ForecastCheck:
    """The forecasts of ended, priced jobs beside what they were billed."""

    expected_usd: float = 0.0
    worst_case_usd: float = 0.0
    cost_usd: float = 0.0

    def add(self, job: BatchJob) -> None:
        cost = job.cost
        if not job.status.is_terminal or cost.actual_usd is None or cost.expected_usd is None:
            return
        self.expected_usd += cost.expected_usd
        self.worst_case_usd += cost.worst_case_usd or 0.0
        self.cost_usd += cost.actual_usd

    def error_pct(self, forecast: float) -> float | None:
        return 100.0 * (forecast - self.cost_usd) / self.cost_usd if self.cost_usd else None


@dataclass
class SpendLine:
    group: tuple[str, ...]
    jobs: int = 0
    items: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    estimated_usd: float = 0.0
    cost_usd: float = 0.0
    realtime_usd: float = 0.0
    unpriced_jobs: int = 0
    calls: int = 0
    unpriced_calls: int = 0
    expected_usd: float = 0.0
    worst_case_usd: float = 0.0
    ended: ForecastCheck = field(default_factory=ForecastCheck)
    forecast_basis: str | None = None
    first_created: str = ""
    cached_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    cache_saved_usd: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def saved_usd(self) -> float:
        return self.realtime_usd - self.cost_usd

    @property
    def discount_pct(self) -> float | None:
        return 100.0 * self.saved_usd / self.realtime_usd if self.realtime_usd else None

    def add(self, job: BatchJob) -> None:
        self.jobs += 1
        self.items += job.progress.completed
        self.failed += job.progress.failed
        self.input_tokens += job.cost.input_tokens
        self.output_tokens += job.cost.output_tokens
        self.estimated_usd += job.cost.estimated_usd or 0.0
        self.expected_usd += job.cost.expected_usd or 0.0
        self.worst_case_usd += job.cost.worst_case_usd or 0.0
        self.ended.add(job)
        self.forecast_basis = job.cost.forecast_basis if self.jobs == 1 else None
        if job.cost.actual_usd is None:
            self.unpriced_jobs += 1
        else:
            self.cost_usd += job.cost.actual_usd
            self.realtime_usd += job.cost.realtime_usd or 0.0
            self.cache_saved_usd += job.cost.cache_saved_usd or 0.0
        self.cached_input_tokens += job.cost.cached_input_tokens
        self.cache_write_input_tokens += job.cost.cache_write_input_tokens
        self._first(job.created_at.isoformat())

    def add_calls(self, total: SpendTotal) -> None:
        """Realtime calls from the ledger: paid at the synchronous price, so nothing saved."""
        self.calls += total.calls
        self.items += total.items
        self.input_tokens += total.input_tokens
        self.output_tokens += total.output_tokens
        self.cost_usd += total.cost_usd
        self.realtime_usd += total.cost_usd
        self.unpriced_calls += total.unpriced_calls
        self._first(datetime.fromtimestamp(total.first_recorded_at, UTC).isoformat())

    def _first(self, created: str) -> None:
        self.first_created = min(self.first_created, created) if self.first_created else created


def level_value(job: BatchJob, level: str) -> str:
    if level == JOB_LEVEL:
        return job.id
    if level == "model":
        return f"{job.provider}/{job.model}"
    if level == "path":
        return "local" if job.provider == "local" else "batch"
    return job.metadata.get(level) or UNLABELLED


def calls_level_value(total: SpendTotal, level: str) -> str:
    if level == JOB_LEVEL:
        return total.job_id
    if level == "model":
        return f"{total.provider}/{total.model}"
    value = getattr(total, level)
    return str(value) if value else UNLABELLED


def spend_by(
    jobs: Sequence[BatchJob], levels: Sequence[str], calls: Sequence[SpendTotal] = ()
) -> list[SpendLine]:
    """Batch jobs and the realtime ledger's totals, grouped by ``levels``."""
    lines: dict[tuple[str, ...], SpendLine] = {}
    for job in jobs:
        key = tuple(level_value(job, level) for level in levels)
        lines.setdefault(key, SpendLine(key)).add(job)
    for total in calls:
        key = tuple(calls_level_value(total, level) for level in levels)
        lines.setdefault(key, SpendLine(key)).add_calls(total)
    return [lines[key] for key in sorted(lines)]


def spend_dict(line: SpendLine, levels: Sequence[str]) -> dict[str, Any]:
    return {
        **dict(zip(levels, line.group, strict=True)),
        "jobs": line.jobs,
        "items": line.items,
        "failed": line.failed,
        "input_tokens": line.input_tokens,
        "output_tokens": line.output_tokens,
        "estimated_usd": round(line.estimated_usd, 8),
        "cost_usd": round(line.cost_usd, 8),
        "realtime_usd": round(line.realtime_usd, 8),
        "saved_usd": round(line.saved_usd, 8),
        "discount_pct": None if line.discount_pct is None else round(line.discount_pct, 2),
        "unpriced_jobs": line.unpriced_jobs,
        "calls": line.calls,
        "unpriced_calls": line.unpriced_calls,
        "expected_usd": round(line.expected_usd, 8),
        "worst_case_usd": round(line.worst_case_usd, 8),
        "expected_error_pct": _rounded(line.ended.error_pct(line.ended.expected_usd)),
        "worst_case_error_pct": _rounded(line.ended.error_pct(line.ended.worst_case_usd)),
        **({"forecast_basis": line.forecast_basis} if JOB_LEVEL in levels else {}),
        "cached_input_tokens": line.cached_input_tokens,
        "cache_write_input_tokens": line.cache_write_input_tokens,
        "cache_saved_usd": round(line.cache_saved_usd, 8),
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
