"""Limiter state in a SQLite file, shared by every process on one machine.

WAL mode lets readers and the single writer overlap; every decision is one ``BEGIN IMMEDIATE``
transaction, so two processes can never both read the same state and both take from it. Time is the
machine's wall clock, the one clock every process on the machine shares.

Async callers first try the transaction on the event loop's thread without waiting for the write lock
(a decision takes tens of microseconds); only when another process holds the lock does the call move to
a worker thread that waits for it, so the event loop never blocks on a lock.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import anyio.to_thread
from tenacity import retry, retry_if_exception, stop_after_delay, wait_random_exponential

from batch_pipelines.ratelimit import gcra
from batch_pipelines.ratelimit.gcra import BucketState, Decision
from batch_pipelines.ratelimit.policy import LimitPolicy

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rate_limiter_buckets (
    key TEXT PRIMARY KEY,
    request_tat REAL NOT NULL,
    token_tat REAL NOT NULL
)
"""
_BUSY_TIMEOUT_SECONDS = 30.0

Result = TypeVar("Result")


class SqliteBackend:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._connection(waits_for_lock=True).execute(_SCHEMA)

    def decide(self, key: str, policy: LimitPolicy, tokens: int) -> Decision:
        return self._decide(self._connection(waits_for_lock=True), key, policy, tokens)

    async def decide_async(self, key: str, policy: LimitPolicy, tokens: int) -> Decision:
        try:
            return self._decide(self._connection(waits_for_lock=False), key, policy, tokens)
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
        return await anyio.to_thread.run_sync(self.decide, key, policy, tokens)

    def adjust(self, key: str, policy: LimitPolicy, requests: int, tokens: int) -> None:
        self._adjust(self._connection(waits_for_lock=True), key, policy, requests, tokens)

    async def adjust_async(self, key: str, policy: LimitPolicy, requests: int, tokens: int) -> None:
        try:
            return self._adjust(self._connection(waits_for_lock=False), key, policy, requests, tokens)
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
        await anyio.to_thread.run_sync(self.adjust, key, policy, requests, tokens)

    def close(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    async def close_async(self) -> None:
        self.close()

    def _decide(self, connection: sqlite3.Connection, key: str, policy: LimitPolicy, tokens: int) -> Decision:
        def step(state: BucketState, now: float) -> tuple[BucketState | None, Decision]:
            taken, decision = gcra.decide(state, now, policy, tokens)
            return (taken if decision.admitted else None), decision

        return _in_write_transaction(connection, key, step)

    def _adjust(
        self, connection: sqlite3.Connection, key: str, policy: LimitPolicy, requests: int, tokens: int
    ) -> None:
        def step(state: BucketState, now: float) -> tuple[BucketState | None, None]:
            return gcra.adjust(state, now, policy, requests, tokens), None

        _in_write_transaction(connection, key, step)

    def _connection(self, waits_for_lock: bool) -> sqlite3.Connection:
        # sqlite3 connections belong to the thread that made them; each thread keeps one that waits for
        # the write lock and, on an event loop's thread, one that gives up at once.
        attribute = "waiting" if waits_for_lock else "nonblocking"
        connection: sqlite3.Connection | None = getattr(self._local, attribute, None)
        if connection is None:
            timeout = _BUSY_TIMEOUT_SECONDS if waits_for_lock else 0.0
            connection = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            _use_wal(connection)
            connection.execute("PRAGMA synchronous=NORMAL")
            setattr(self._local, attribute, connection)
            with self._connections_lock:
                self._connections.append(connection)
        return connection


def _is_busy(error: BaseException) -> bool:
    codes = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return isinstance(error, sqlite3.OperationalError) and getattr(error, "sqlite_errorcode", None) in codes


# Switching a file to WAL needs a moment alone with it, and SQLite answers "database is locked" at once,
# without its busy handler, when several processes open a new file together: so wait and try again.
@retry(
    retry=retry_if_exception(_is_busy),
    wait=wait_random_exponential(multiplier=0.01, max=0.5),
    stop=stop_after_delay(_BUSY_TIMEOUT_SECONDS),
    reraise=True,
)
def _use_wal(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA journal_mode=WAL")


def _in_write_transaction(
    connection: sqlite3.Connection,
    key: str,
    step: Callable[[BucketState, float], tuple[BucketState | None, Result]],
) -> Result:
    """Read the key's state, let ``step`` decide, write what it returns (None: nothing), all atomically."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        now = time.time()
        row = connection.execute(
            "SELECT request_tat, token_tat FROM rate_limiter_buckets WHERE key = ?", (key,)
        ).fetchone()
        state = BucketState.full(now) if row is None else BucketState(request_tat=row[0], token_tat=row[1])
        new_state, result = step(state, now)
        if new_state is not None:
            connection.execute(
                "INSERT INTO rate_limiter_buckets (key, request_tat, token_tat) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET "
                "request_tat = excluded.request_tat, token_tat = excluded.token_tat",
                (key, new_state.request_tat, new_state.token_tat),
            )
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return result
