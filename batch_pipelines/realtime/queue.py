"""A durable work queue with leases, attempts, priorities and a dead-letter table (SQLite by default).

Items are leased with a visibility timeout: a worker that dies never acks what it holds, so its lease
expires and the item is delivered again. An item is acked in the same transaction that writes its result,
after the result row, so an acked item always has a durable result and an item with a result is never
sent again. Every delivery counts as an attempt; after ``max_attempts`` the item moves to the dead-letter
table (also when its lease keeps expiring). Higher ``priority`` is leased first, then insertion order.

Every transaction is ``BEGIN IMMEDIATE`` on a WAL file, so any number of processes on one machine can
share a queue; SQLAlchemy Core runs in a worker thread behind the async methods.
"""

from __future__ import annotations

import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from batch_pipelines.engine.models import BatchRequest, BatchResult
from batch_pipelines.realtime import queue_tables as tables
from batch_pipelines.realtime.queue_tables import DEAD, DONE, LEASED, PENDING

T = TypeVar("T")
DEFAULT_VISIBILITY_TIMEOUT_S = 300.0
DEFAULT_MAX_ATTEMPTS = 5

# Built once: the hot path then costs SQLAlchemy a cache lookup instead of building expressions.
_item = tables.items.c
_is_open = _item.state.in_(tables.OPEN_STATES)
_NEXT = (
    sa.select(_item.item_id, _item.payload, _item.priority, _item.attempts, _item.state)
    .where(_item.queue == sa.bindparam("q"), _is_open, _item.visible_at <= sa.bindparam("now"))
    .order_by(_item.priority.desc(), _item.seq)
    .limit(sa.bindparam("n"))
)
_TAKE = (
    sa.update(tables.items)
    .where(_item.queue == sa.bindparam("q"), _item.item_id == sa.bindparam("id"))
    .values(
        state=LEASED,
        attempts=_item.attempts + 1,
        lease_owner=sa.bindparam("owner"),
        lease_token=sa.bindparam("token"),
        visible_at=sa.bindparam("expires"),
    )
)
_WAKEUP = sa.select(sa.func.min(_item.visible_at)).where(_item.queue == sa.bindparam("q"), _is_open)
_FINISH = (
    sa.update(tables.items)
    .where(_item.queue == sa.bindparam("q"), _item.item_id == sa.bindparam("id"))
    .values(
        state=sa.bindparam("state"),
        visible_at=None,
        lease_owner=None,
        lease_token=None,
        last_error=sa.bindparam("error"),
    )
)
# A transient failure gives the item back, leasable again at ``at``, if this delivery still holds it.
_GIVE_BACK = (
    sa.update(tables.items)
    .where(
        _item.queue == sa.bindparam("q"),
        _item.item_id == sa.bindparam("id"),
        _item.lease_token == sa.bindparam("token"),
    )
    .values(
        state=PENDING,
        visible_at=sa.bindparam("at"),
        last_error=sa.bindparam("error"),
        lease_owner=None,
        lease_token=None,
    )
)
_WRITE_RESULT = sqlite.insert(tables.results).on_conflict_do_nothing(index_elements=["queue", "item_id"])
_WRITE_DEAD = sqlite.insert(tables.dead_letters).on_conflict_do_nothing(index_elements=["queue", "item_id"])


@dataclass(frozen=True, slots=True)
class QueueItem:
    """A request and its priority (higher goes first)."""

    request: BatchRequest
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Lease:
    """One delivery of an item to one worker. ``attempt`` is 1 on the first delivery."""

    item_id: str
    request: BatchRequest
    priority: int
    attempt: int
    token: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one delivery ended (see ``WorkQueue.finish``); ``delay_s`` only matters for a retry."""

    lease: Lease
    result: BatchResult
    disposition: Literal["done", "retry", "dead"]
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class QueueCounts:
    pending: int
    leased: int
    done: int
    dead: int

    @property
    def open(self) -> int:
        """Items that still need work."""
        return self.pending + self.leased


@dataclass(frozen=True, slots=True)
class DeadLetter:
    item_id: str
    attempts: int
    error: str
    error_type: str | None
    request: BatchRequest


class FinishShortcuts(ABC):
    """One-item forms of ``finish``, the same for every queue backend."""

    @abstractmethod
    async def finish(self, outcomes: Sequence[Outcome]) -> list[str]: ...

    async def complete(self, lease: Lease, result: BatchResult) -> None:
        """``finish`` one answered item: its result is written, then it is acked."""
        await self.finish([Outcome(lease, result, "done")])

    async def retry_later(self, lease: Lease, result: BatchResult, delay_s: float) -> bool:
        """``finish`` one transient failure; True when it was dead-lettered (it was its last attempt)."""
        return await self.finish([Outcome(lease, result, "retry", delay_s)]) == [DEAD]

    async def dead_letter(self, lease: Lease, result: BatchResult) -> None:
        """``finish`` one permanent failure: its result is written and it moves to the dead-letter table."""
        await self.finish([Outcome(lease, result, "dead")])


class WorkQueue(FinishShortcuts):
    """``WorkQueue("work.db", name="tickets:2026-01-02")``; ``WorkQueue()`` lives in memory (one process).

    ``name`` separates queues sharing one file (one per pipeline partition, say). Call
    ``await queue.initialize()`` once; it creates the tables and is harmless to repeat.
    """

    def __init__(
        self,
        location: Path | str | None = None,
        *,
        name: str = "default",
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"WorkQueue max_attempts must be at least 1, got {max_attempts}")
        if visibility_timeout_s <= 0:
            raise ValueError(f"WorkQueue visibility_timeout_s must be positive, got {visibility_timeout_s}")
        self.url = _url_of(location)
        self.name = name
        self.max_attempts = max_attempts
        self.visibility_timeout_s = visibility_timeout_s
        self._memory = location is None
        self._lock = threading.Lock()
        self._engine: Engine | None = None

    def __repr__(self) -> str:
        return f"WorkQueue({self.url!r}, name={self.name!r})"

    async def initialize(self) -> None:
        if self._engine is None:
            await anyio.to_thread.run_sync(self._create)

    def _create(self) -> None:
        if self._memory:
            engine = sa.create_engine(
                self.url, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            engine = sa.create_engine(self.url, connect_args={"timeout": 60})
        sa.event.listen(engine, "connect", _sqlite_connect)
        sa.event.listen(engine, "begin", _begin_immediate)
        tables.metadata.create_all(engine)
        with engine.begin() as conn:
            tables.add_missing_columns(conn)
        self._engine = engine

    async def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- writing work ---------------------------------------------------------------------------------

    async def enqueue(self, work: Iterable[BatchRequest | QueueItem]) -> int:
        """Add items not already in this queue (by request id); returns how many were new."""
        queued = [item if isinstance(item, QueueItem) else QueueItem(item) for item in work]
        return await self._run(self._enqueue, queued)

    def _enqueue(self, queued: Sequence[QueueItem]) -> int:
        if not queued:
            return 0
        now = time.time()
        with self._begin() as conn:
            seq = conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(tables.items.c.seq), 0)).where(
                    tables.items.c.queue == self.name
                )
            ).scalar_one()
            rows = [
                {
                    "queue": self.name,
                    "item_id": item.request.id,
                    "seq": seq + index + 1,
                    "priority": item.priority,
                    "payload": item.request.to_json(),
                    "state": PENDING,
                    "attempts": 0,
                    "visible_at": now,
                }
                for index, item in enumerate(queued)
            ]
            statement = sqlite.insert(tables.items).on_conflict_do_nothing(
                index_elements=["queue", "item_id"]
            )
            return int(conn.execute(statement, rows).rowcount or 0)

    # -- leasing --------------------------------------------------------------------------------------

    async def lease(self, owner: str, limit: int = 1) -> list[Lease]:
        """Up to ``limit`` items for ``owner``: pending ones whose delay has passed and ones whose lease
        expired, highest priority first. Expired items out of attempts go to the dead-letter table."""
        return await self._run(self._lease, owner, limit)

    def _lease(self, owner: str, limit: int) -> list[Lease]:
        now = time.time()
        token = uuid.uuid4().hex
        leases: list[Lease] = []
        with self._begin() as conn:
            rows = conn.execute(_NEXT, {"q": self.name, "now": now, "n": limit}).all()
            for item_id, payload, priority, attempts, state in rows:
                if state == LEASED and attempts >= self.max_attempts:  # its lease expired once too often
                    message = f"the lease expired {attempts} times (worker died or took too long)"
                    failure = BatchResult(
                        item_id, error=message, error_type="lease_expired", attempt=attempts
                    )
                    self._write_result(conn, failure, now)
                    self._bury(conn, item_id, attempts, payload, message, "lease_expired", now)
                    continue
                leases.append(Lease(item_id, BatchRequest.from_json(payload), priority, attempts + 1, token))
            if leases:
                expires = now + self.visibility_timeout_s
                conn.execute(
                    _TAKE,
                    [
                        {
                            "q": self.name,
                            "id": lease.item_id,
                            "owner": owner,
                            "token": token,
                            "expires": expires,
                        }
                        for lease in leases
                    ],
                )
        return leases

    async def next_wakeup(self) -> float | None:
        """Seconds until some open item may be leased (0 if one may be now); None when none is open."""
        return await self._run(self._next_wakeup)

    def _next_wakeup(self) -> float | None:
        with self._begin() as conn:
            moment = conn.execute(_WAKEUP, {"q": self.name}).scalar_one()
        return None if moment is None else max(0.0, moment - time.time())

    # -- finishing ------------------------------------------------------------------------------------

    async def finish(self, outcomes: Sequence[Outcome]) -> list[str]:
        """Record how deliveries ended, all in one transaction; returns each item's new state.

        ``done``: write the result, then ack. ``retry``: give the item back, leasable again after
        ``delay_s`` (on its last attempt it is dead-lettered instead, with this result). ``dead``: write the
        result and move the item to the dead-letter table. A result already written for an item (by a
        worker whose lease had expired) stays: the first answer wins.
        """
        if not outcomes:
            return []
        return await self._run(self._finish, outcomes)

    def _finish(self, outcomes: Sequence[Outcome]) -> list[str]:
        # One statement per kind of change, each executed for the whole group: per-item statements cost
        # more than the provider call at hundreds of calls per second.
        now = time.time()
        states: list[str] = []
        given_back: list[dict[str, Any]] = []
        written: list[dict[str, Any]] = []
        acked: list[dict[str, Any]] = []
        buried: list[dict[str, Any]] = []
        for outcome in outcomes:
            lease, result = outcome.lease, outcome.result
            if outcome.disposition == "retry" and lease.attempt < self.max_attempts:
                given_back.append(
                    {
                        "q": self.name,
                        "id": lease.item_id,
                        "token": lease.token,
                        "at": now + outcome.delay_s,
                        "error": _error(result),
                    }
                )
                states.append(PENDING)
                continue
            written.append(tables.result_row(self.name, result, now))
            if outcome.disposition == "done":
                acked.append({"q": self.name, "id": lease.item_id, "state": DONE, "error": None})
                states.append(DONE)
            else:
                buried.append(
                    self._dead_row(
                        lease.item_id,
                        lease.attempt,
                        lease.request.to_json(),
                        _error(result),
                        result.error_type,
                        now,
                    )
                )
                states.append(DEAD)
        with self._begin() as conn:
            if given_back:
                conn.execute(_GIVE_BACK, given_back)
            if written:
                conn.execute(_WRITE_RESULT, written)
            if acked:
                conn.execute(_FINISH, acked)
            if buried:
                self._bury_rows(conn, buried)
        return states

    async def release(self, leases: Iterable[Lease]) -> None:
        """Hand back leases a worker will not process (it is stopping); the delivery does not count."""
        held = list(leases)
        if held:
            await self._run(self._release, held)

    def _release(self, leases: Sequence[Lease]) -> None:
        now = time.time()
        with self._begin() as conn:
            for lease in leases:
                conn.execute(
                    self._held(lease).values(
                        state=PENDING,
                        attempts=lease.attempt - 1,
                        visible_at=now,
                        lease_owner=None,
                        lease_token=None,
                    )
                )

    # -- reading --------------------------------------------------------------------------------------

    async def counts(self) -> QueueCounts:
        return await self._run(self._counts)

    def _counts(self) -> QueueCounts:
        item = tables.items.c
        with self._begin() as conn:
            rows = conn.execute(
                sa.select(item.state, sa.func.count()).where(item.queue == self.name).group_by(item.state)
            ).all()
        by_state = {state: count for state, count in rows}
        return QueueCounts(*(int(by_state.get(state, 0)) for state in (PENDING, LEASED, DONE, DEAD)))

    async def results(self) -> list[BatchResult]:
        """Every written result of this queue (successes and dead letters alike), in insertion order."""
        return await self._run(self._results)

    def _results(self) -> list[BatchResult]:
        result, item = tables.results.c, tables.items.c
        query = (
            sa.select(tables.results)
            .join(tables.items, sa.and_(item.queue == result.queue, item.item_id == result.item_id))
            .where(result.queue == self.name)
            .order_by(item.seq)
        )
        with self._begin() as conn:
            return [tables.result_from_row(row) for row in conn.execute(query).mappings()]

    async def dead_letters(self) -> list[DeadLetter]:
        return await self._run(self._dead_letters)

    def _dead_letters(self) -> list[DeadLetter]:
        dead = tables.dead_letters.c
        query = sa.select(tables.dead_letters).where(dead.queue == self.name).order_by(dead.dead_at)
        with self._begin() as conn:
            return [
                DeadLetter(
                    row["item_id"],
                    row["attempts"],
                    row["error"],
                    row["error_type"],
                    BatchRequest.from_json(row["payload"]),
                )
                for row in conn.execute(query).mappings()
            ]

    # -- plumbing -------------------------------------------------------------------------------------

    def _held(self, lease: Lease) -> Any:
        item = tables.items.c
        return sa.update(tables.items).where(
            item.queue == self.name, item.item_id == lease.item_id, item.lease_token == lease.token
        )

    def _write_result(self, conn: Connection, result: BatchResult, now: float) -> None:
        conn.execute(_WRITE_RESULT, [tables.result_row(self.name, result, now)])

    def _bury(
        self,
        conn: Connection,
        item_id: str,
        attempts: int,
        payload: str,
        error: str,
        error_type: str | None,
        now: float,
    ) -> None:
        self._bury_rows(conn, [self._dead_row(item_id, attempts, payload, error, error_type, now)])

    def _dead_row(
        self, item_id: str, attempts: int, payload: str, error: str, error_type: str | None, now: float
    ) -> dict[str, Any]:
        return {
            "queue": self.name,
            "item_id": item_id,
            "attempts": attempts,
            "error": error,
            "error_type": error_type,
            "payload": payload,
            "dead_at": now,
        }

    def _bury_rows(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Move items to the dead-letter table: their row there, then their state."""
        conn.execute(_WRITE_DEAD, rows)
        conn.execute(
            _FINISH,
            [{"q": self.name, "id": row["item_id"], "state": DEAD, "error": row["error"]} for row in rows],
        )

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(partial(self._locked, func, *args))

    def _locked(self, func: Callable[..., T], *args: Any) -> T:
        # One transaction at a time per process: threads queue on this lock in order instead of meeting
        # SQLite's busy handler, whose back-off sleeps grow to 100 ms under contention.
        with self._lock:
            return func(*args)

    def _begin(self) -> Any:
        if self._engine is None:
            raise RuntimeError("WorkQueue used before 'await queue.initialize()'")
        return self._engine.begin()


def _error(result: BatchResult) -> str:
    return result.error or "failed without a message"


def _url_of(location: Path | str | None) -> str:
    if location is None:
        return "sqlite://"
    text = str(location)
    if text.startswith("sqlite:"):
        return text
    if "://" in text:
        raise ValueError(
            f"WorkQueue location {text!r}: only SQLite files (a path or sqlite:///…) are supported"
        )
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level, so the "begin" listener decides how each transaction starts.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def _begin_immediate(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
