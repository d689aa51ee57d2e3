"""A job's cost before it is submitted, as two figures: expected, and worst case.

- **Worst case**: the prompts at the higher of their character estimate (engine.limits, which errs
  high) and their count (engine.prompt_tokens) scaled up by what the provider billed earlier jobs, and
  every answer at its ``max_tokens`` (``DEFAULT_OUTPUT_TOKENS`` without one), at the batch price. A
  ``max_cost_usd`` budget is compared with it.
- **Expected**: the same prompts, with each answer as long as the answers of earlier jobs of the same
  pipeline and model were on average (never more than its ``max_tokens``), and the prompt count scaled by
  what the provider billed those jobs against what we counted for them (the framing and tokenizer
  differences a count cannot see). With no such history, each answer is taken at
  ``DEFAULT_OUTPUT_RATIO`` of its ``max_tokens`` and the prompts as counted. The figure says which:
  ``basis`` reads "from 7 earlier partitions" or "no history: 50 % of max_tokens".

History is the ``HISTORY_JOBS`` most recent ended jobs of the provider and model (among the last
``HISTORY_SCAN`` of them) with the job's ``pipeline`` metadata (jobs without one share theirs), that
answered at least one item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from batch_pipelines.engine.models import BatchJob, BatchRequest
from batch_pipelines.engine.pricing import DEFAULT_OUTPUT_TOKENS, ModelPrice
from batch_pipelines.engine.prompt_tokens import PromptTokenCounter
from batch_pipelines.engine.records import JobRecord
from batch_pipelines.engine.store import BatchStore

DEFAULT_OUTPUT_RATIO = 0.5
HISTORY_JOBS = 20
HISTORY_SCAN = 200


@dataclass(frozen=True, slots=True)
class UsageHistory:
    """What earlier jobs were billed, summed over ``jobs`` jobs of ``partitions`` distinct partitions."""

    jobs: int = 0
    partitions: int = 0
    answered: int = 0
    output_tokens: int = 0
    billed_input_tokens: int = 0
    counted_input_tokens: float = 0.0  # our pre-submit count, for the items that were billed

    @property
    def output_per_answer(self) -> float | None:
        return self.output_tokens / self.answered if self.answered else None

    @property
    def input_ratio(self) -> float | None:
        """Billed prompt tokens per counted one (None when no earlier job recorded its count)."""
        return self.billed_input_tokens / self.counted_input_tokens if self.counted_input_tokens else None

    def describe(self) -> str:
        if not self.answered:
            return f"no history: {DEFAULT_OUTPUT_RATIO * 100:.0f} % of max_tokens"
        unit = f"{self.partitions} earlier partition" if self.partitions else f"{self.jobs} earlier job"
        count = self.partitions or self.jobs
        return f"from {unit}{'' if count == 1 else 's'}"


async def read_history(store: BatchStore, record: JobRecord) -> UsageHistory:
    """What earlier jobs of ``record``'s provider, model and pipeline were billed."""
    pipeline = record.metadata.get("pipeline")

    def same_pipeline(earlier: JobRecord) -> bool:
        return earlier.id != record.id and earlier.metadata.get("pipeline") == pipeline

    jobs = await store.ended_jobs(
        record.provider, record.model, same_pipeline, limit=HISTORY_JOBS, scan=HISTORY_SCAN
    )
    return usage_history(jobs)


def usage_history(jobs: Sequence[BatchJob]) -> UsageHistory:
    """The history in ``jobs``: those that answered at least one item count."""
    mine = [job for job in jobs if job.progress.completed]
    counted = [job for job in mine if job.cost.counted_input_tokens and job.progress.total]
    return UsageHistory(
        jobs=len(mine),
        partitions=len({job.metadata["partition_key"] for job in mine if job.metadata.get("partition_key")}),
        answered=sum(job.progress.completed for job in mine),
        output_tokens=sum(job.cost.output_tokens for job in mine),
        billed_input_tokens=sum(job.cost.input_tokens for job in counted),
        counted_input_tokens=sum(
            (job.cost.counted_input_tokens or 0) * job.progress.completed / job.progress.total
            for job in counted
        ),
    )


@dataclass(frozen=True, slots=True)
class Forecast:
    expected_usd: float | None  # None: the model has no price
    worst_case_usd: float | None
    counted_input_tokens: int
    basis: str  # where the expected figure comes from, and how the prompts were counted


class ForecastTally:
    """Adds up, request by request while a job is prepared, what its forecast needs."""

    def __init__(self, provider: str, model: str, history: UsageHistory) -> None:
        self.history = history
        self.prompts = PromptTokenCounter(provider, model)
        self._per_answer = history.output_per_answer
        self._caps: dict[int, int] = {}  # answers by max_tokens (one or a few values): cheap per request

    def add(self, request: BatchRequest, heuristic_tokens: int) -> None:
        self.prompts.add(request, heuristic_tokens)
        if request.kind == "chat":
            cap = request.max_tokens or DEFAULT_OUTPUT_TOKENS
            self._caps[cap] = self._caps.get(cap, 0) + 1

    @property
    def chat_requests(self) -> int:
        return sum(self._caps.values())

    @property
    def worst_output(self) -> int:
        return sum(cap * count for cap, count in self._caps.items())

    @property
    def expected_output(self) -> float:
        if self._per_answer is None:
            return self.worst_output * DEFAULT_OUTPUT_RATIO
        return sum(min(self._per_answer, cap) * count for cap, count in self._caps.items())

    def forecast(self, price: ModelPrice | None) -> Forecast:
        counted = self.prompts.total
        ratio = self.history.input_ratio
        expected_input = counted * (ratio or 1.0)
        # A guard may only overshoot: never below the character heuristic (which errs high), nor below
        # what the provider billed earlier jobs for prompts counted like these.
        worst_input = max(self.prompts.heuristic_total, counted * max(ratio or 1.0, 1.0))
        return Forecast(
            expected_usd=price.cost(round(expected_input), round(self.expected_output)) if price else None,
            worst_case_usd=price.cost(round(worst_input), self.worst_output) if price else None,
            counted_input_tokens=counted,
            basis=self._basis(ratio),
        )

    def _basis(self, ratio: float | None) -> str:
        prompts = f"prompts: {self.prompts.method}"
        if ratio is not None:
            prompts += f", x{ratio:.3f} as billed before"
        if not self.chat_requests:
            return f"no answers to price; {prompts}"
        answers = self.history.describe()
        if self._per_answer is not None:
            answers += f": {self._per_answer:.1f} output tokens an answer"
        return f"{answers}; {prompts}"
