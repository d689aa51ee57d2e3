"""How a job reads on the terminal: a dict for JSON, and a row with a progress bar for the status table."""

from __future__ import annotations

from typing import Any

from rich.progress_bar import ProgressBar
from rich.table import Table

from batch_pipelines.console.safe_text import plain
from batch_pipelines.engine import BatchJob


def job_dict(job: BatchJob) -> dict[str, Any]:
    progress, cost = job.progress, job.cost
    return {
        "id": job.id,
        "status": job.status.value,
        "detail": job.detail,
        "provider": job.provider,
        "model": job.model,
        "pipeline": job.metadata.get("pipeline"),
        "partition_key": job.metadata.get("partition_key"),
        "attempt": job.attempt,
        "created_at": job.created_at.isoformat(),
        "provider_batch_ids": job.provider_batch_ids,
        "total": progress.total,
        "completed": progress.completed,
        "failed": progress.failed,
        "percent": progress.percent,
        "items_per_hour": progress.items_per_hour,
        "eta_seconds": progress.eta_seconds,
        "input_tokens": cost.input_tokens,
        "output_tokens": cost.output_tokens,
        "estimated_usd": cost.estimated_usd,
        "expected_usd": cost.expected_usd,
        "worst_case_usd": cost.worst_case_usd,
        "forecast_basis": cost.forecast_basis,
        "cost_usd": cost.actual_usd,
        "realtime_usd": cost.realtime_usd,
        "saved_usd": cost.saved_usd,
        "cached_input_tokens": cost.cached_input_tokens,
        "cache_saved_usd": cost.cache_saved_usd,
    }


def forecast_line(job: BatchJob) -> str:
    """The job's cost forecast in a sentence: expected, worst case (what a budget is held to), basis."""
    cost = job.cost
    if cost.worst_case_usd is None:
        return f"{job.id}: no cost forecast (no price for {job.provider}/{job.model})"
    expected = f"expected ${cost.expected_usd:.6f}, " if cost.expected_usd is not None else ""
    basis = f" ({cost.forecast_basis})" if cost.forecast_basis else ""
    return f"{job.id}: {expected}worst case ${cost.worst_case_usd:.6f}{basis}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def money(value: float | None) -> str:
    return "?" if value is None else f"${value:.4f}"


def status_table(jobs: list[BatchJob], title: str) -> Table:
    table = Table(title=plain(title), title_justify="left")
    for name, justify in (
        ("job", "left"),
        ("status", "left"),
        ("progress", "left"),
        ("%", "right"),
        ("done/total", "right"),
        ("failed", "right"),
        ("items/h", "right"),
        ("ETA", "right"),
        ("cost so far", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for job in jobs:
        progress = job.progress
        done = progress.completed + progress.failed
        table.add_row(
            plain(job.id),
            job.status.value,
            ProgressBar(total=max(progress.total, 1), completed=min(done, progress.total), width=24),
            f"{progress.percent:.1f}",
            f"{done}/{progress.total}",
            str(progress.failed),
            "?" if progress.items_per_hour is None else f"{progress.items_per_hour:,.0f}",
            duration(progress.eta_seconds),
            money(job.cost.actual_usd if job.cost.actual_usd is not None else job.cost.estimated_usd),
        )
    if not jobs:
        table.add_row("(no jobs)", "", "", "", "", "", "", "", "")
    return table
