"""The store's job lock: one holder at a time across processes and machines, and released when its holder
dies, on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa

from batch_pipelines.engine.job_locks import JobLockTimeoutError
from batch_pipelines.engine.store import BatchStore

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return f"sqlite:///{tmp_path / 'batches.db'}"


async def test_a_held_job_lock_makes_others_wait_and_passes_on_when_released(store_url: str) -> None:
    holder, other = BatchStore(store_url), BatchStore(store_url)  # two processes' stores on one database
    order: list[str] = []

    async def wait_for_it() -> None:
        async with other.job_lock("job-1", "collect", wait_s=30):
            order.append("other holds")

    async with anyio.create_task_group() as group, holder.job_lock("job-1", "collect"):
        with pytest.raises(JobLockTimeoutError, match="job-1"):
            async with other.job_lock("job-1", "collect", wait_s=0.2):
                order.append("held twice")
        group.start_soon(wait_for_it)
        await anyio.sleep(0.3)  # (the other is polling now; the order below holds without it)
        async with other.job_lock("job-2", "collect", wait_s=0.2):  # another job: no wait
            order.append("job-2")
        async with other.job_lock("job-1", "submit", wait_s=0.2):  # another purpose: no wait
            order.append("job-1 submit")
        order.append("holder releases")
    assert order == ["job-2", "job-1 submit", "holder releases", "other holds"]
    for store in (holder, other):
        await store.close()


HOLD_UNTIL_KILLED = textwrap.dedent(
    """
    import asyncio, sys
    from batch_pipelines.engine.store import BatchStore

    async def main() -> None:
        async with BatchStore(sys.argv[1]).job_lock("job-1", "collect"):
            print("held", flush=True)
            await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


async def test_the_lock_of_a_killed_holder_is_free_at_once(store_url: str) -> None:
    holder = await anyio.open_process([sys.executable, "-c", HOLD_UNTIL_KILLED, store_url])
    store = BatchStore(store_url)
    try:
        assert holder.stdout is not None
        assert (await holder.stdout.receive()).decode().strip() == "held"
        with pytest.raises(JobLockTimeoutError):
            async with store.job_lock("job-1", "collect", wait_s=0.2):
                pass
    finally:
        holder.kill()
        await holder.aclose()
    async with store.job_lock("job-1", "collect", wait_s=30):  # no lease to run out first
        pass
    await store.close()


async def test_an_in_memory_store_has_one_holder_at_a_time() -> None:
    store = BatchStore()
    async with store.job_lock("job-1", "collect"):
        with pytest.raises(JobLockTimeoutError):
            async with store.job_lock("job-1", "collect", wait_s=0.1):
                pass
    async with store.job_lock("job-1", "collect", wait_s=0.1):
        pass


@pytest.mark.services
async def test_a_holder_whose_database_session_ended_leaves_without_error_and_the_lock_free(
    postgres_url: str,
) -> None:
    holder, other = BatchStore(postgres_url), BatchStore(postgres_url)
    admin = sa.create_engine(sa.make_url(postgres_url).set(drivername="postgresql+psycopg"))
    async with holder.job_lock("job-1", "collect"):
        with admin.begin() as conn:  # every other session on the database ends, as in a failover
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
    admin.dispose()
    async with other.job_lock("job-1", "collect", wait_s=30):
        pass
    for store in (holder, other):
        await store.close()
