"""A pipeline's spending limit for the next submission: per run, or what is left of the UTC day's budget.

The engine enforces the limit (``BatchManager.submit(max_cost_usd=…)`` refuses before any upload); this
module only works out how much of a daily budget the pipeline's earlier jobs of the day have taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from batch_pipelines.components.engine_session import page_jobs
from batch_pipelines.engine import BatchJob, BatchStore
from batch_pipelines.pipeline.spec import PipelineSpec

_PAGE = 500


@dataclass(frozen=True)
class SubmissionBudget:
    max_cost_usd: float | None
    note: str


def job_spend(job: BatchJob) -> float:
    """What a job counts against a budget: its estimate, or its reported cost when that came out higher."""
    return max(job.cost.estimated_usd or 0.0, job.cost.actual_usd or 0.0)


async def submission_budget(store: BatchStore, spec: PipelineSpec, *, now: datetime) -> SubmissionBudget:
    if spec.max_cost_usd is None:
        return SubmissionBudget(None, "")
    if spec.max_cost_per == "run":
        return SubmissionBudget(spec.max_cost_usd, f"max_cost_usd {spec.max_cost_usd} per run")
    day_start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    spent = 0.0
    cursor: str | None = None
    while True:
        page, _ = await page_jobs(store, spec, after=cursor, limit=_PAGE, open_only=False)
        spent += sum(job_spend(job) for job in page if job.created_at >= day_start)
        if len(page) < _PAGE:
            break
        cursor = page[-1].id
    note = (
        f"max_cost_usd {spec.max_cost_usd} per day; ${spent:.4f} already committed on "
        f"{day_start.date().isoformat()} UTC"
    )
    return SubmissionBudget(spec.max_cost_usd - spent, note)
