"""Copy the engine's job records and realtime spend totals into Parquet so DuckDB can show them as the
`jobs`, `spend` and `costs` views.

The store is SQLite (or PostgreSQL) and this DuckDB build cannot attach SQLite offline, so the views read a
snapshot that the query command and the demo refresh before they read.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import polars as pl

from batch_pipelines.engine import BatchJob, BatchStore
from batch_pipelines.engine.spend import SpendTotal
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.parquet_files import write_parquet_atomic
from batch_pipelines.storage.views import JOBS_SCHEMA, SPEND_SCHEMA

_PAGE = 500


def job_row(job: BatchJob) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "pipeline": job.metadata.get("pipeline"),
        "partition_key": job.metadata.get("partition_key"),
        "status": job.status.value,
        "detail": job.detail,
        "attempt": job.attempt,
        "provider_batch_ids": ",".join(job.provider_batch_ids),
        "total": job.progress.total,
        "completed": job.progress.completed,
        "failed": job.progress.failed,
        "percent": job.progress.percent,
        "estimated_usd": job.cost.estimated_usd,
        "actual_usd": job.cost.actual_usd,
        "realtime_usd": job.cost.realtime_usd,
        "saved_usd": job.cost.saved_usd,
        "path": "local" if job.provider == "local" else "batch",
        "expected_usd": job.cost.expected_usd,
        "worst_case_usd": job.cost.worst_case_usd,
        "forecast_basis": job.cost.forecast_basis,
    }


def spend_row(total: SpendTotal) -> dict[str, Any]:
    return {name: getattr(total, name) for name in SPEND_SCHEMA}


async def read_all_jobs(store: BatchStore) -> list[BatchJob]:
    jobs: list[BatchJob] = []
    cursor: str | None = None
    while True:
        page = await store.list_jobs(after=cursor, limit=_PAGE)
        jobs.extend(page)
        if len(page) < _PAGE:
            return jobs
        cursor = page[-1].id


def refresh_jobs_snapshot(layout: StorageLayout, store_location: str | Path | None = None) -> None:
    """Rewrite the snapshot from the store (``store_location``: a URL or file; default the working
    folder's); nothing to do while a local store was never written."""
    location = store_location or layout.store_path
    if isinstance(location, Path) and not location.exists():
        return

    async def snapshot() -> tuple[list[BatchJob], list[SpendTotal]]:
        store = BatchStore(location)
        await store.initialize()
        try:
            return await read_all_jobs(store), await store.spend_totals()
        finally:
            await store.close()

    jobs, spend = asyncio.run(snapshot())
    frame = pl.DataFrame([job_row(job) for job in jobs], schema=JOBS_SCHEMA)
    write_parquet_atomic(frame, layout.jobs_snapshot_path)
    totals = pl.DataFrame([spend_row(total) for total in spend], schema=SPEND_SCHEMA)
    write_parquet_atomic(totals, layout.spend_snapshot_path)
