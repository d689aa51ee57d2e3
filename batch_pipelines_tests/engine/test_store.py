import multiprocessing
import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from batch_pipelines.engine.models import BatchResult, BatchStatus
from batch_pipelines.engine.records import BatchRecord, JobRecord
from batch_pipelines.engine.store import BatchStore

pytestmark = pytest.mark.anyio


async def _store_with_job(path: Path, job_id: str = "job-1", requests: int = 3) -> BatchStore:
    store = BatchStore(path)
    await store.initialize()
    await store.save_job(
        JobRecord(
            id=job_id,
            provider="openai",
            model="gpt-4o-mini",
            kind="chat",
            created_at=time.time(),
            prepared=True,
            total=requests,
            metadata={"partition": "2026-11-22"},
        )
    )
    await store.add_requests(job_id, [(f"r{i}", i, 1, 0, i, "{}") for i in range(requests)])
    await store.add_batches(
        [
            BatchRecord(
                job_id=job_id,
                attempt=1,
                chunk=0,
                request_count=requests,
                byte_count=10,
                est_tokens=5,
                recorded_at=time.time(),
                provider_batch_id="batch_1",
                raw_status="in_progress",
                phase=BatchStatus.PROCESSING,
                detail="in_progress",
            )
        ]
    )
    return store


async def test_sqlite_file_uses_wal(tmp_path: Path) -> None:
    store = await _store_with_job(tmp_path / "batches.db")
    await store.close()
    with sqlite3.connect(tmp_path / "batches.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_results_upserted_not_doubled_and_visible_to_a_new_store(tmp_path: Path) -> None:
    store = await _store_with_job(tmp_path / "batches.db")
    first = [
        BatchResult(id="r0", response="a", input_tokens=3),
        BatchResult(id="r1", error="boom", retryable=True),
    ]
    await store.upsert_results("job-1", first)
    await store.upsert_results("job-1", [BatchResult(id="r0", response="a", input_tokens=3)])
    await store.close()

    reopened = BatchStore(f"sqlite:///{tmp_path / 'batches.db'}")
    await reopened.initialize()
    counts = await reopened.result_counts("job-1")
    assert (counts.succeeded, counts.errored, counts.retryable, counts.input_tokens) == (1, 1, 1, 3)
    pages = list(reopened.result_pages("job-1"))
    rows = [row for page in pages for row in page]
    assert [rid for rid, _ in rows] == ["r0", "r1", "r2"]
    assert rows[2][1] is None
    job = await reopened.get_job("job-1")
    assert job.metadata == {"partition": "2026-11-22"}
    assert job.provider_batch_ids == ["batch_1"]


async def test_list_jobs_pages_by_cursor_and_filters_open(tmp_path: Path) -> None:
    store = BatchStore(tmp_path / "b.db")
    await store.initialize()
    for index in range(5):
        status = BatchStatus.COMPLETED if index % 2 else BatchStatus.PROCESSING
        await store.save_job(
            JobRecord(
                id=f"job-{index}",
                provider="openai",
                model="m",
                kind="chat",
                created_at=time.time(),
                status=status,
            )
        )
    first = await store.list_jobs(limit=2)
    second = await store.list_jobs(after=first[-1].id, limit=2)
    assert [j.id for j in first + second] == ["job-0", "job-1", "job-2", "job-3"]
    assert [j.id for j in await store.list_jobs(open_only=True)] == ["job-0", "job-2", "job-4"]


async def test_missing_job_is_a_clear_error() -> None:
    store = BatchStore()
    await store.initialize()
    with pytest.raises(KeyError, match="no batch job with id 'nope'"):
        await store.get_job("nope")


async def test_only_one_caller_claims_a_batch_launch(tmp_path: Path) -> None:
    store = BatchStore(tmp_path / "b.db")
    await store.initialize()
    await store.save_job(JobRecord(id="j", provider="openai", model="m", kind="chat", created_at=time.time()))
    intent = BatchRecord(
        job_id="j", attempt=1, chunk=0, request_count=1, byte_count=1, est_tokens=1, recorded_at=time.time()
    )
    await store.add_batches([intent])
    [seen_by_a] = await store.get_batches("j")
    [seen_by_b] = await store.get_batches("j")
    assert await store.claim_launch(seen_by_a, 100.0)
    assert not await store.claim_launch(seen_by_b, 101.0)
    [after] = await store.get_batches("j")
    assert after.launch_started_at == 100.0
    assert await store.claim_launch(after, 200.0)  # a later process taking over a stale claim


def test_postgresql_schema_and_upsert_compile() -> None:
    """No PostgreSQL driver is installed here: check the DDL and the upsert render for that dialect."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql

    from batch_pipelines.engine import tables
    from batch_pipelines.engine.store import upsert_statement

    ddl: list[str] = []
    engine = sa.create_mock_engine(
        "postgresql://", lambda sql, *_, **__: ddl.append(str(sql.compile(dialect=engine.dialect)))
    )
    tables.metadata.create_all(engine, checkfirst=False)
    assert any("CREATE TABLE bp_results" in statement for statement in ddl)

    class _Conn:
        dialect = postgresql.dialect()

    upsert = upsert_statement(_Conn(), tables.results, ["job_id", "request_id"], ["response"])  # type: ignore[arg-type]
    assert "ON CONFLICT (job_id, request_id) DO UPDATE" in str(upsert.compile(dialect=postgresql.dialect()))


def _initialize_when_released(path: str, barrier: Any) -> str:
    barrier.wait()
    try:
        anyio.run(_initialize, path)
    except Exception as error:  # reported to the test, which names it
        return f"{type(error).__name__}: {error}"
    return ""


async def _initialize(path: str) -> None:
    store = BatchStore(Path(path))
    await store.initialize()
    await store.close()


def test_processes_opening_a_new_store_file_together_all_get_the_tables(tmp_path: Path) -> None:
    """Several runs of a backfill start at once on a fresh workdir: each opens the ledger."""
    context = multiprocessing.get_context("spawn")
    failures: list[str] = []
    with context.Manager() as manager, context.Pool(6) as pool:
        for trial in range(3):
            barrier = manager.Barrier(6)
            path = str(tmp_path / f"batches-{trial}.db")
            failures += [
                error for error in pool.starmap(_initialize_when_released, [(path, barrier)] * 6) if error
            ]
    assert failures == []
