"""Opening the batch engine for one pipeline (provider client, store under the working folder, manager),
and the store look-ups the Dagster layer needs.

A pipeline's job ids all start with `<pipeline>.`; the store orders jobs by id, so one pipeline's jobs
form a contiguous range a sensor can page through with a cursor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

from batch_pipelines.components.resources import BatchEngineResource
from batch_pipelines.engine import BatchJob, BatchManager, BatchStore
from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.providers import make_provider
from batch_pipelines.workdir import make_workdir


@dataclass(frozen=True)
class EngineSession:
    manager: BatchManager
    store: BatchStore


def job_id_prefix(spec: PipelineSpec) -> str:
    return f"{spec.name}."


@asynccontextmanager
async def open_engine(resource: BatchEngineResource, spec: PipelineSpec) -> AsyncIterator[EngineSession]:
    layout = resource.layout(spec)
    make_workdir(layout.workdir)
    provider = make_provider(
        spec.provider,
        model=spec.model,
        base_url=resource.base_url,
        api_key=resource.provider_key(),
        work_dir=layout.workdir,
    )
    if resource.enqueued_token_limit is not None:
        provider.limits = replace(provider.limits, max_enqueued_tokens=resource.enqueued_token_limit)
    store = BatchStore(resource.store_location())
    await store.initialize()
    try:
        manager = BatchManager(provider=provider, store=store, archive=resource.batch_files())
        yield EngineSession(manager=manager, store=store)
    finally:
        await provider.aclose()
        await store.close()


async def page_jobs(
    store: BatchStore, spec: PipelineSpec, *, after: str | None, limit: int, open_only: bool = True
) -> tuple[list[BatchJob], str | None]:
    """Up to `limit` (open) jobs of this pipeline after the cursor, and the next cursor (None: start over)."""
    prefix = job_id_prefix(spec)
    page = await store.list_jobs(open_only=open_only, after=after or prefix, limit=limit)
    mine = [job for job in page if job.id.startswith(prefix)]
    more = len(page) == limit and len(mine) == len(page)
    return mine, (mine[-1].id if more and mine else None)


async def latest_job_id(store: BatchStore, spec: PipelineSpec, partition_key: str) -> str | None:
    """The newest job recorded for one partition, for a results run launched by hand."""
    prefix = f"{job_id_prefix(spec)}{partition_key}."
    latest: BatchJob | None = None
    cursor: str | None = prefix
    while cursor is not None:
        page = await store.list_jobs(after=cursor, limit=200)
        mine = [job for job in page if job.id.startswith(prefix)]
        for job in mine:
            if latest is None or job.created_at >= latest.created_at:
                latest = job
        cursor = mine[-1].id if len(page) == 200 and len(mine) == len(page) else None
    return latest.id if latest else None
