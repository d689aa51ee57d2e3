"""BatchStore: jobs, provider batches, requests and results in SQL (SQLite now, PostgreSQL by URL).

SQLAlchemy Core runs in a worker thread (``anyio.to_thread``) behind async methods. SQLite files use
WAL so a sensor can read while a run writes. Results are keyed by (job id, request id) and upserted,
so collecting the same results twice stores nothing twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from batch_pipelines.engine.answer_columns import add_missing_table_columns
from batch_pipelines.engine.errors import JobNotFoundError
from batch_pipelines.engine.job_locks import AdvisoryLock, FileLock, JobLock, ProcessLock, held, lock_name
from batch_pipelines.engine.models import BatchJob, BatchResult
from batch_pipelines.engine.pricing import job_cost
from batch_pipelines.engine.records import LAUNCHING, QUEUED, BatchRecord, JobRecord, ResultCounts
from batch_pipelines.engine.spend import CallSpend, SpendScope, SpendTotal
from batch_pipelines.engine.status import progress, summarize
from batch_pipelines.engine.store_file import (
    check_store_file,
    create_store_file,
    sqlite_file_of,
    unusable_store,
)
from batch_pipelines.engine.tables import (
    REQUEST_COLUMNS,
    REQUEST_RESULT_COLUMNS,
    RESULT_COLUMNS,
    RESULT_KEYS,
    SPEND_COLUMNS,
    batch_from_row,
    batch_row,
    batches,
    job_from_row,
    job_row,
    jobs,
    metadata,
    request_with_result,
    requests,
    result_row,
    results,
    spend,
)

T = TypeVar("T")
RequestRow = tuple[str, int, int, int, int, str]  # (request_id, seq, attempt, chunk, line, payload json)
PAGE = 2000
SCHEMA_LOCK_KEY = 0x42505F5354  # a PostgreSQL advisory lock id for creating the tables ("BP_ST")
JOB_LOCK_WAIT_S = 1800.0  # how long to wait for another holder of a job lock (alive: a dead one's is gone)


class BatchStore:
    """Persistent record of batch jobs.

    ``BatchStore(Path("batches.db"))`` or ``BatchStore("sqlite:///batches.db")`` or
    ``BatchStore("postgresql://…")``; ``BatchStore()`` keeps everything in memory. Call
    ``await store.initialize()`` once (it creates the tables; calling it again is harmless).
    """

    def __init__(self, location: Path | str | None = None) -> None:
        self.url = _url_of(location)
        self._memory = location is None
        self._lock = threading.Lock()
        self._engine: Engine | None = None

    def __repr__(self) -> str:
        return f"BatchStore({self._engine.url if self._engine else self.url!r})"

    # -- lifecycle -------------------------------------------------------------------------------------

    async def initialize(self) -> None:
        if self._engine is None:
            await self._run(self._create)

    def _create(self) -> None:
        if self._memory:
            engine = sa.create_engine(
                self.url, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        elif self.url.startswith("sqlite"):
            engine = sa.create_engine(self.url, connect_args={"timeout": 30})
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = sa.create_engine(_with_psycopg(self.url), pool_pre_ping=True)
        path = sqlite_file_of(self.url)
        if path is not None:
            check_store_file(path)
            if not path.exists():
                create_store_file(path, _create_tables)
        try:
            _create_tables(engine)
        except (sa.exc.DatabaseError, sa.exc.OperationalError) as error:
            engine.dispose()
            if path is None or _lost_a_schema_race(error):
                raise
            raise unusable_store(path, error) from error
        self._engine = engine

    async def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(partial(self._locked, func, *args))

    def _locked(self, func: Callable[..., T], *args: Any) -> T:
        if self._memory:
            with self._lock:
                return func(*args)
        return func(*args)

    def _begin(self) -> Any:
        if self._engine is None:
            raise RuntimeError("BatchStore used before 'await store.initialize()'")
        return self._engine.begin()

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A transaction whose reads all see one state of the store. PostgreSQL gives one under REPEATABLE
        READ (not under its default, READ COMMITTED); SQLite's WAL gives one to a transaction, but Python's
        sqlite3 starts none before a write, so it is begun here."""
        if self._engine is None:
            raise RuntimeError("BatchStore used before 'await store.initialize()'")
        with self._engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN")
                yield conn

    def _within(self, conn: Connection | None) -> Any:
        """``conn``'s transaction when given, else a transaction of its own."""
        return self._begin() if conn is None else nullcontext(conn)

    # -- locks -----------------------------------------------------------------------------------------

    @asynccontextmanager
    async def job_lock(
        self, job_id: str, purpose: str, wait_s: float = JOB_LOCK_WAIT_S
    ) -> AsyncIterator[None]:
        """Hold the job's lock for ``purpose`` (e.g. "collect") for the body: of several processes asking at
        once one holds it and the others wait their turn, up to ``wait_s`` (then JobLockTimeoutError).
        A holder that dies releases it (see engine.job_locks)."""
        await self.initialize()
        async with held(self._job_lock(lock_name(job_id, purpose)), wait_s, f"job {job_id!r} ({purpose})"):
            yield

    def _job_lock(self, name: str) -> JobLock:
        assert self._engine is not None
        if self._memory:
            return ProcessLock(f"{id(self)}:{name}")
        if self._engine.dialect.name == "postgresql":
            return AdvisoryLock(self._engine, name)
        database = Path(str(self._engine.url.database))
        return FileLock(database.with_name(f"{database.name}-locks"), name)

    # -- jobs ------------------------------------------------------------------------------------------

    async def save_job(self, job: JobRecord) -> None:
        """Insert or replace the job row."""
        await self._run(self._save_job, job)

    def _save_job(self, job: JobRecord) -> None:
        row = job_row(job)
        with self._begin() as conn:
            conn.execute(upsert_statement(conn, jobs, ["id"], [k for k in row if k != "id"]), [row])

    async def claim_job(self, job: JobRecord) -> bool:
        """Insert the job row unless one with its id exists: True when this caller created it (the one
        submitter, among several racing on one job id, that prepares it)."""
        return await self._run(self._claim_job, job)

    def _claim_job(self, job: JobRecord) -> bool:
        with self._begin() as conn:
            statement = insert_if_absent(conn, jobs, ["id"]).returning(jobs.c.id)
            return conn.execute(statement, job_row(job)).first() is not None

    async def renew_preparation(self, job_id: str, held_until: float | None, until: float | None) -> bool:
        """Move a job's preparation lease from ``held_until`` to ``until`` (None: prepared); False when
        the lease is no longer the caller's (it expired and another submitter took the job over)."""
        return await self._run(self._renew_preparation, job_id, held_until, until)

    def _renew_preparation(self, job_id: str, held_until: float | None, until: float | None) -> bool:
        statement = (
            sa.update(jobs)
            .where(jobs.c.id == job_id, _lease_is(held_until))
            .values(prepare_lease_until=until)
        )
        with self._begin() as conn:
            return bool(conn.execute(statement).rowcount == 1)

    async def finish_preparation(self, job: JobRecord, held_until: float | None) -> bool:
        """Replace the job row with ``job`` if its preparation lease is still ``held_until``."""
        return await self._run(self._finish_preparation, job, held_until)

    def _finish_preparation(self, job: JobRecord, held_until: float | None) -> bool:
        values = {k: v for k, v in job_row(job).items() if k != "id"}
        statement = sa.update(jobs).where(jobs.c.id == job.id, _lease_is(held_until)).values(**values)
        with self._begin() as conn:
            return bool(conn.execute(statement).rowcount == 1)

    async def discard_unprepared_job(self, job_id: str, held_until: float | None) -> bool:
        """Forget a job that was never prepared, if its preparation lease is still ``held_until``
        (compare-and-set: of two processes taking over an abandoned job, one discards it)."""
        return await self._run(self._discard_unprepared_job, job_id, held_until)

    def _discard_unprepared_job(self, job_id: str, held_until: float | None) -> bool:
        with self._begin() as conn:
            deleted = conn.execute(
                sa.delete(jobs).where(jobs.c.id == job_id, jobs.c.prepared.is_(False), _lease_is(held_until))
            )
            if deleted.rowcount != 1:
                return False
            for table in (results, requests, batches):
                conn.execute(sa.delete(table).where(table.c.job_id == job_id))
            return True

    async def get_job_record(self, job_id: str) -> JobRecord | None:
        return await self._run(self._get_job_record, job_id)

    def _get_job_record(self, job_id: str) -> JobRecord | None:
        with self._begin() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().first()
        return None if row is None else job_from_row(row)

    async def update_job(self, job_id: str, **values: Any) -> None:
        await self._run(self._update, jobs, [jobs.c.id == job_id], values)

    async def record_status(self, view: BatchJob, *, open_: bool, finished_at: float | None) -> None:
        """Store a job's derived status, unless a later attempt started since ``view`` was read: that
        stale view (say, ended) must not close the job the new attempt reopened."""
        values = {
            "status": view.status.value,
            "detail": view.detail,
            "open": open_,
            "finished_at": finished_at,
        }
        await self._run(self._update, jobs, [jobs.c.id == view.id, jobs.c.attempt == view.attempt], values)

    async def discard_job(self, job_id: str) -> None:
        """Forget a job and everything recorded under it."""
        await self._run(self._discard_job, job_id)

    def _discard_job(self, job_id: str) -> None:
        with self._begin() as conn:
            for table in (results, requests, batches):
                conn.execute(sa.delete(table).where(table.c.job_id == job_id))
            conn.execute(sa.delete(jobs).where(jobs.c.id == job_id))

    async def get_job(self, job_id: str) -> BatchJob:
        """The job as last recorded (no provider call); raises JobNotFoundError."""
        job = await self._run(self._load_view, job_id)
        if job is None:
            raise JobNotFoundError(job_id)
        return job

    def _load_view(self, job_id: str) -> BatchJob | None:
        # One snapshot: read in separate transactions, a job row from before a new attempt started could
        # meet that attempt's open batches and read as the old attempt still running.
        with self._snapshot() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).mappings().first()
            if row is None:
                return None
            batch_records = self._batches(job_id, conn)
            counts = self._result_counts(job_id, conn)
        return build_view(job_from_row(row), batch_records, counts)

    async def list_jobs(
        self, *, open_only: bool = False, after: str | None = None, limit: int = 100
    ) -> list[BatchJob]:
        """Jobs ordered by id, ``limit`` at a time after the id ``after`` (a cursor for sensors).
        ``open_only`` keeps jobs still pending/processing or whose cancel is still under way."""
        return await self._run(self._list_jobs, open_only, after, limit)

    def _list_jobs(self, open_only: bool, after: str | None, limit: int) -> list[BatchJob]:
        query = sa.select(jobs.c.id).order_by(jobs.c.id).limit(limit)
        if open_only:
            query = query.where(jobs.c.open.is_(True))
        if after is not None:
            query = query.where(jobs.c.id > after)
        with self._begin() as conn:
            ids = list(conn.execute(query).scalars())
        views = (self._load_view(job_id) for job_id in ids)
        return [view for view in views if view is not None]

    async def ended_jobs(
        self, provider: str, model: str, keep: Callable[[JobRecord], bool], *, limit: int, scan: int
    ) -> list[BatchJob]:
        """Up to ``limit`` jobs of this provider and model that have ended and that ``keep`` accepts,
        newest first, out of the ``scan`` most recently created (the history a cost forecast learns
        from)."""
        return await self._run(self._ended_jobs, provider, model, keep, limit, scan)

    def _ended_jobs(
        self, provider: str, model: str, keep: Callable[[JobRecord], bool], limit: int, scan: int
    ) -> list[BatchJob]:
        query = (
            sa.select(jobs)
            .where(jobs.c.provider == provider, jobs.c.model == model)
            .where(jobs.c.open.is_(False), jobs.c.prepared.is_(True))
            .order_by(jobs.c.created_at.desc())
            .limit(scan)
        )
        with self._begin() as conn:
            records = [job_from_row(row) for row in conn.execute(query).mappings()]
        kept = [record for record in records if keep(record)][:limit]
        views = (self._load_view(record.id) for record in kept)
        return [view for view in views if view is not None]

    async def ended_job_ids(
        self, *, id_prefix: str, finished_after: float, limit: int
    ) -> list[tuple[str, float]]:
        """(id, finished_at) of ended jobs whose id starts with ``id_prefix`` and that finished after
        ``finished_after`` (epoch seconds), oldest first: what a sensor has not seen end yet."""
        return await self._run(self._ended_job_ids, id_prefix, finished_after, limit)

    def _ended_job_ids(self, id_prefix: str, finished_after: float, limit: int) -> list[tuple[str, float]]:
        query = (
            sa.select(jobs.c.id, jobs.c.finished_at)
            .where(
                jobs.c.open.is_(False),
                jobs.c.finished_at > finished_after,
                jobs.c.id.startswith(id_prefix, autoescape=True),
            )
            .order_by(jobs.c.finished_at, jobs.c.id)
            .limit(limit)
        )
        with self._begin() as conn:
            return [(str(job_id), float(finished)) for job_id, finished in conn.execute(query)]

    # -- provider batches ------------------------------------------------------------------------------

    async def add_batches(self, records: Sequence[BatchRecord]) -> None:
        await self._run(self._add_batches, records)

    def _add_batches(self, records: Sequence[BatchRecord]) -> None:
        if not records:
            return
        with self._begin() as conn:
            conn.execute(sa.insert(batches), [batch_row(r) for r in records])

    async def get_batches(self, job_id: str) -> list[BatchRecord]:
        return await self._run(self._batches, job_id)

    def _batches(self, job_id: str, conn: Connection | None = None) -> list[BatchRecord]:
        query = (
            sa.select(batches).where(batches.c.job_id == job_id).order_by(batches.c.attempt, batches.c.chunk)
        )
        with self._within(conn) as reading:
            return [batch_from_row(row) for row in reading.execute(query).mappings()]

    async def save_batch(self, record: BatchRecord) -> None:
        row = batch_row(record)
        keys = [
            batches.c.job_id == record.job_id,
            batches.c.attempt == record.attempt,
            batches.c.chunk == record.chunk,
        ]
        await self._run(self._update, batches, keys, row)

    async def claim_launch(self, record: BatchRecord, started_at: float) -> bool:
        """Mark a queued batch as being launched (detail LAUNCHING), unless another process did since
        ``record`` was read (compare-and-set on ``launch_started_at``): True when this caller now owns
        the launch."""
        return await self._run(self._claim_launch, record, started_at)

    def _claim_launch(self, record: BatchRecord, started_at: float) -> bool:
        previous = batches.c.launch_started_at
        unchanged = (
            previous.is_(None) if record.launch_started_at is None else previous == record.launch_started_at
        )
        statement = (
            sa.update(batches)
            .where(
                batches.c.job_id == record.job_id,
                batches.c.attempt == record.attempt,
                batches.c.chunk == record.chunk,
                batches.c.provider_batch_id.is_(None),
                unchanged,
            )
            .values(launch_started_at=started_at, detail=LAUNCHING)
        )
        with self._begin() as conn:
            return bool(conn.execute(statement).rowcount == 1)

    async def release_claims(self) -> None:
        """Release every launch claim and preparation lease, as though they had expired. Only for a
        caller that knows no other process uses the store (the demo, holding its folder's lock): claims
        left by a process that was killed then wait for nobody. A released launch is still looked up at
        the provider first, so a batch created just before the kill is adopted, not created twice."""
        await self._run(self._release_claims)

    def _release_claims(self) -> None:
        with self._begin() as conn:
            conn.execute(
                sa.update(batches)
                .where(batches.c.detail == LAUNCHING, batches.c.provider_batch_id.is_(None))
                .values(detail=QUEUED)
            )
            conn.execute(
                sa.update(jobs)
                .where(jobs.c.prepared.is_(False), jobs.c.prepare_lease_until.is_not(None))
                .values(prepare_lease_until=0.0)
            )

    async def enqueued_tokens(self, provider: str, model: str) -> int:
        """Estimated prompt tokens in launched, unfinished batches of this provider and model (all jobs)."""
        return await self._run(self._enqueued_tokens, provider, model)

    def _enqueued_tokens(self, provider: str, model: str) -> int:
        query = (
            sa.select(sa.func.coalesce(sa.func.sum(batches.c.est_tokens), 0))
            .select_from(batches.join(jobs, jobs.c.id == batches.c.job_id))
            .where(jobs.c.provider == provider, jobs.c.model == model)
            .where(batches.c.ended.is_(False), batches.c.provider_batch_id.is_not(None))
        )
        with self._begin() as conn:
            return int(conn.execute(query).scalar_one())

    # -- requests --------------------------------------------------------------------------------------

    async def add_requests(self, job_id: str, rows: Sequence[RequestRow]) -> list[str]:
        """Rows of (request_id, seq, attempt, chunk, line, payload json). Returns the ids that repeat an
        id stored for the job before or earlier in ``rows``; those rows are not stored. (The store's key
        finds repeats, so a submission of millions keeps no set of ids in memory.)"""
        return await self._run(self._add_requests, job_id, rows)

    def _add_requests(self, job_id: str, rows: Sequence[RequestRow]) -> list[str]:
        if not rows:
            return []
        try:
            with self._begin() as conn:
                bulk_insert(conn, requests, REQUEST_COLUMNS, [(job_id, *r) for r in rows])
            return []
        except sa.exc.IntegrityError:
            pass  # some id repeats: find which, and store the rest
        ids = [r[0] for r in rows]
        with self._begin() as conn:
            stored = requests.c.job_id == job_id, requests.c.request_id.in_(ids)
            seen = set(conn.execute(sa.select(requests.c.request_id).where(*stored)).scalars())
            repeated, fresh = [], []
            for row in rows:
                if row[0] in seen:
                    repeated.append(row[0])
                else:
                    seen.add(row[0])
                    fresh.append((job_id, *row))
            if fresh:
                bulk_insert(conn, requests, REQUEST_COLUMNS, fresh)
        return repeated

    async def place_requests(self, job_id: str, rows: Sequence[tuple[str, int, int, int]]) -> None:
        """Move requests to a new (attempt, chunk, line): rows of (request_id, attempt, chunk, line)."""
        await self._run(self._place_requests, job_id, rows)

    def _place_requests(self, job_id: str, rows: Sequence[tuple[str, int, int, int]]) -> None:
        if not rows:
            return
        statement = (
            sa.update(requests)
            .where(requests.c.job_id == job_id, requests.c.request_id == sa.bindparam("rid"))
            .values(attempt=sa.bindparam("a"), chunk=sa.bindparam("c"), line=sa.bindparam("l"))
        )
        with self._begin() as conn:
            conn.execute(statement, [{"rid": r[0], "a": r[1], "c": r[2], "l": r[3]} for r in rows])

    def chunk_payloads(self, job_id: str, attempt: int, chunk: int) -> Iterator[list[str]]:
        """Pages of one provider batch's request payloads in line order (read with next_page)."""
        last = -1
        while True:
            query = (
                sa.select(requests.c.line, requests.c.payload)
                .where(requests.c.job_id == job_id, requests.c.attempt == attempt, requests.c.chunk == chunk)
                .where(requests.c.line > last)
                .order_by(requests.c.line)
                .limit(PAGE)
            )
            with self._begin() as conn:
                rows = conn.execute(query).all()
            if not rows:
                return
            last = rows[-1][0]
            yield [row[1] for row in rows]

    def retryable_payloads(self, job_id: str) -> Iterator[list[str]]:
        """Pages of payloads whose stored result is a retryable error, in submission order (next_page)."""
        last = -1
        while True:
            query = (
                sa.select(requests.c.seq, requests.c.payload)
                .select_from(
                    requests.join(
                        results,
                        sa.and_(
                            results.c.job_id == requests.c.job_id,
                            results.c.request_id == requests.c.request_id,
                        ),
                    )
                )
                .where(requests.c.job_id == job_id, results.c.retryable.is_(True), requests.c.seq > last)
                .order_by(requests.c.seq)
                .limit(PAGE)
            )
            with self._begin() as conn:
                rows = conn.execute(query).all()
            if not rows:
                return
            last = rows[-1][0]
            yield [row[1] for row in rows]

    async def next_page(self, pages: Iterator[T]) -> T | None:
        """The next page of one of the page iterators here, read in the store's worker thread."""
        return await self._run(next, pages, None)

    async def chunk_request_ids(self, job_id: str, attempt: int, chunk: int) -> dict[str, int]:
        """Request id → line of one provider batch."""
        return await self._run(self._chunk_request_ids, job_id, attempt, chunk)

    def _chunk_request_ids(self, job_id: str, attempt: int, chunk: int) -> dict[str, int]:
        query = sa.select(requests.c.request_id, requests.c.line).where(
            requests.c.job_id == job_id, requests.c.attempt == attempt, requests.c.chunk == chunk
        )
        with self._begin() as conn:
            return {row[0]: row[1] for row in conn.execute(query)}

    async def unresolved_in_chunk(self, job_id: str, attempt: int, chunk: int) -> list[tuple[str, int]]:
        """(request id, line) of a batch's requests that have no stored result."""
        return await self._run(self._unresolved_in_chunk, job_id, attempt, chunk)

    def _unresolved_in_chunk(self, job_id: str, attempt: int, chunk: int) -> list[tuple[str, int]]:
        query = (
            sa.select(requests.c.request_id, requests.c.line)
            .select_from(requests.outerjoin(results, _same_request()))
            .where(requests.c.job_id == job_id, requests.c.attempt == attempt, requests.c.chunk == chunk)
            .where(results.c.request_id.is_(None))
        )
        with self._begin() as conn:
            return [(row[0], row[1]) for row in conn.execute(query)]

    # -- results ---------------------------------------------------------------------------------------

    async def upsert_results(self, job_id: str, items: Sequence[BatchResult]) -> None:
        await self._run(self._upsert_results, job_id, items)

    def _upsert_results(self, job_id: str, items: Sequence[BatchResult]) -> None:
        if not items:
            return
        rows = [result_row(job_id, item) for item in items]
        with self._begin() as conn:
            bulk_insert(
                conn, results, ["job_id", "request_id", *RESULT_COLUMNS], rows, replace_on=RESULT_KEYS
            )

    async def start_attempt(self, job_id: str, attempt: int, records: Sequence[BatchRecord]) -> None:
        """In one transaction: record the new attempt's batches, drop results being redone, bump the job."""
        await self._run(self._start_attempt, job_id, attempt, records)

    def _start_attempt(self, job_id: str, attempt: int, records: Sequence[BatchRecord]) -> None:
        moved = sa.select(requests.c.request_id).where(
            requests.c.job_id == job_id, requests.c.attempt == attempt
        )
        with self._begin() as conn:
            conn.execute(sa.insert(batches), [batch_row(r) for r in records])
            conn.execute(
                sa.delete(results).where(results.c.job_id == job_id, results.c.request_id.in_(moved))
            )
            conn.execute(
                sa.update(jobs)
                .where(jobs.c.id == job_id)
                .values(attempt=attempt, cancel_requested=False, open=True, finished_at=None)
            )

    def result_pages(self, job_id: str) -> Iterator[list[tuple[str, BatchResult | None]]]:
        """Pages of (request id, stored result or None), one per request, in submission order."""
        last = -1
        while True:
            query = (
                sa.select(*REQUEST_RESULT_COLUMNS)
                .select_from(requests.outerjoin(results, _same_request()))
                .where(requests.c.job_id == job_id, requests.c.seq > last)
                .order_by(requests.c.seq)
                .limit(PAGE)
            )
            with self._begin() as conn:
                rows = conn.execute(query).all()
            if not rows:
                return
            last = rows[-1][0]
            yield [request_with_result(row) for row in rows]

    async def result_counts(self, job_id: str) -> ResultCounts:
        return await self._run(self._result_counts, job_id)

    def _result_counts(self, job_id: str, conn: Connection | None = None) -> ResultCounts:
        ok = sa.case((results.c.error.is_(None), 1), else_=0)
        bad = sa.case((results.c.error.is_not(None), 1), else_=0)
        retry = sa.case((results.c.retryable.is_(True), 1), else_=0)
        query = sa.select(
            sa.func.coalesce(sa.func.sum(ok), 0),
            sa.func.coalesce(sa.func.sum(bad), 0),
            sa.func.coalesce(sa.func.sum(retry), 0),
            sa.func.coalesce(sa.func.sum(results.c.input_tokens), 0),
            sa.func.coalesce(sa.func.sum(results.c.output_tokens), 0),
            sa.func.coalesce(sa.func.sum(results.c.cached_input_tokens), 0),
            sa.func.coalesce(sa.func.sum(results.c.cache_write_input_tokens), 0),
        ).where(results.c.job_id == job_id)
        with self._within(conn) as reading:
            row = reading.execute(query).one()
        return ResultCounts(*(int(v) for v in row))

    # -- realtime spend --------------------------------------------------------------------------------

    async def add_spend(self, scope: SpendScope, calls: Sequence[CallSpend]) -> None:
        """Record paid realtime calls, all in one insert (see engine/spend.py)."""
        await self._run(self._add_spend, scope, calls)

    def _add_spend(self, scope: SpendScope, calls: Sequence[CallSpend]) -> None:
        if not calls:
            return
        now = time.time()
        labels = (scope.pipeline, scope.partition_key, scope.job_id, scope.provider, scope.model)
        rows = [(*labels, c.path, c.items, c.input_tokens, c.output_tokens, c.cost_usd, now) for c in calls]
        with self._begin() as conn:
            bulk_insert(conn, spend, SPEND_COLUMNS, rows)

    async def spend_totals(self) -> list[SpendTotal]:
        """The realtime spend summed per pipeline, partition, job id, provider, model and path (in SQL)."""
        return await self._run(self._spend_totals)

    def _spend_totals(self) -> list[SpendTotal]:
        c = spend.c
        keys = (c.pipeline, c.partition_key, c.job_id, c.provider, c.model, c.path)
        query = (
            sa.select(
                *keys,
                sa.func.count(),
                sa.func.sum(c["items"]),
                sa.func.sum(c.input_tokens),
                sa.func.sum(c.output_tokens),
                sa.func.coalesce(sa.func.sum(c.cost_usd), 0.0),
                sa.func.sum(sa.case((c.cost_usd.is_(None), 1), else_=0)),
                sa.func.min(c.recorded_at),
            )
            .group_by(*keys)
            .order_by(*keys)
        )
        with self._begin() as conn:
            rows = conn.execute(query).all()
        return [_spend_total(row) for row in rows]

    # -- helpers ---------------------------------------------------------------------------------------

    def _update(self, table: sa.Table, where: list[Any], values: dict[str, Any]) -> None:
        with self._begin() as conn:
            conn.execute(sa.update(table).where(*where).values(**values))


def build_view(record: JobRecord, batch_records: list[BatchRecord], counts: ResultCounts) -> BatchJob:
    """The public BatchJob from what the store holds."""
    status, detail = summarize(record, batch_records, counts)
    uncollected = [b for b in batch_records if not b.collected]  # their usage is the provider's report
    return BatchJob(
        id=record.id,
        status=status,
        detail=detail,
        provider=record.provider,
        model=record.model,
        kind=record.kind,
        attempt=record.attempt,
        provider_batch_ids=[b.provider_batch_id for b in batch_records if b.provider_batch_id],
        progress=progress(record, batch_records, counts, now=time.time()),
        cost=replace(
            job_cost(
                record.price,
                record.estimated_usd,
                counts.input_tokens + sum(b.input_tokens for b in uncollected),
                counts.output_tokens + sum(b.output_tokens for b in uncollected),
                cached_input_tokens=counts.cached_input_tokens
                + sum(b.cached_input_tokens for b in uncollected),
                cache_write_input_tokens=counts.cache_write_input_tokens,
            ),
            expected_usd=record.expected_usd,
            forecast_basis=record.forecast_basis,
            counted_input_tokens=record.counted_input_tokens,
        ),
        created_at=datetime.fromtimestamp(record.created_at, UTC),
        metadata=dict(record.metadata),
        response_schema=record.response_schema,
    )


def _spend_total(row: Sequence[Any]) -> SpendTotal:
    pipeline, partition, job_id, provider, model, path = row[:6]
    calls, items, tokens_in, tokens_out, cost, unpriced, first = row[6:]
    return SpendTotal(
        pipeline=pipeline,
        partition_key=partition,
        job_id=job_id,
        provider=provider,
        model=model,
        path=path,
        calls=int(calls),
        items=int(items),
        input_tokens=int(tokens_in),
        output_tokens=int(tokens_out),
        cost_usd=float(cost),
        unpriced_calls=int(unpriced),
        first_recorded_at=float(first),
    )


def _lease_is(held_until: float | None) -> Any:
    column = jobs.c.prepare_lease_until
    return column.is_(None) if held_until is None else column == held_until


def _same_request() -> Any:
    return sa.and_(results.c.job_id == requests.c.job_id, results.c.request_id == requests.c.request_id)


def _url_of(location: Path | str | None) -> str:
    if location is None:
        return "sqlite://"
    if isinstance(location, Path) or "://" not in location:
        return f"sqlite:///{Path(location).expanduser().resolve()}"
    return location


def _add_missing_columns(conn: Connection) -> None:
    """Columns added to the job, batch and result tables since a store file was created."""
    for table in (jobs, batches, results):
        add_missing_table_columns(conn, table)


def _with_psycopg(url: str) -> str:
    """``postgresql://`` (or ``postgres://``) URLs use psycopg 3 unless they name a driver themselves."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _lost_a_schema_race(error: BaseException) -> bool:
    """SQLite has no advisory lock: processes opening a new file together can each find a table missing
    and one of them then fails to create it (or finds the file locked while another switches it to WAL);
    looking again finds the table there."""
    message = str(error)
    return isinstance(error, sa.exc.OperationalError) and any(
        words in message for words in ("already exists", "duplicate column", "database is locked")
    )


@retry(
    retry=retry_if_exception(_lost_a_schema_race),
    wait=wait_random_exponential(multiplier=0.01, max=0.5),
    stop=stop_after_attempt(20),
    reraise=True,
)
def _create_tables(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # processes starting together create the tables once
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        metadata.create_all(conn)
        _add_missing_columns(conn)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def bulk_insert(
    conn: Connection,
    table: sa.Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    replace_on: Sequence[str] = (),
) -> None:
    """Insert many rows given as tuples in ``columns`` order, through the driver's executemany; with
    ``replace_on``, a row whose key exists updates the other columns instead. At a million rows the
    per-row work SQLAlchemy does for dict parameters costs as much as the database itself."""
    quote = conn.dialect.identifier_preparer.quote
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    statement = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join(marker for _ in columns)})"
    )
    if replace_on:
        updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns if c not in replace_on)
        statement += f" ON CONFLICT ({', '.join(quote(c) for c in replace_on)}) DO UPDATE SET {updates}"
    conn.exec_driver_sql(statement, list(rows))


def upsert_statement(conn: Connection, table: sa.Table, keys: list[str], update: Iterable[str]) -> Any:
    """An insert that updates ``update`` columns when the ``keys`` already exist (execute with rows)."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        sqlite_stmt = sqlite.insert(table)
        return sqlite_stmt.on_conflict_do_update(
            index_elements=keys, set_={c: sqlite_stmt.excluded[c] for c in update}
        )
    if dialect == "postgresql":
        pg_stmt = postgresql.insert(table)
        return pg_stmt.on_conflict_do_update(
            index_elements=keys, set_={c: pg_stmt.excluded[c] for c in update}
        )
    raise NotImplementedError(f"BatchStore supports SQLite and PostgreSQL, not {dialect}")


def insert_if_absent(conn: Connection, table: sa.Table, keys: list[str]) -> Any:
    """An insert that does nothing when the ``keys`` already exist (add RETURNING to tell which happened:
    an insert's rowcount is not reliable across drivers)."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
    raise NotImplementedError(f"BatchStore supports SQLite and PostgreSQL, not {dialect}")
