"""Limiter state in a SQLite file, shared by every process on one machine.

WAL mode lets readers and the single writer overlap; every decision is one ``BEGIN IMMEDIATE``
transaction, so two processes can never both read the same state and both take from it. Time is the
machine's wall clock, the one clock every process on the machine shares.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import anyio.to_thread

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


class SqliteBackend:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._connection().execute(_SCHEMA)

    def decide(self, key: str, policy: LimitPolicy, tokens: int) -> Decision:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            now = time.time()
            state, decision = gcra.decide(self._read(connection, key, now), now, policy, tokens)
            if decision.admitted:
                self._write(connection, key, state)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        return decision

    async def decide_async(self, key: str, policy: LimitPolicy, tokens: int) -> Decision:
        return await anyio.to_thread.run_sync(self.decide, key, policy, tokens)

    def adjust(self, key: str, policy: LimitPolicy, requests: int, tokens: int) -> None:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            now = time.time()
            state = gcra.adjust(self._read(connection, key, now), now, policy, requests, tokens)
            self._write(connection, key, state)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    async def adjust_async(self, key: str, policy: LimitPolicy, requests: int, tokens: int) -> None:
        await anyio.to_thread.run_sync(self.adjust, key, policy, requests, tokens)

    def close(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    async def close_async(self) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        # sqlite3 connections belong to the thread that made them; async calls run on worker threads.
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    @staticmethod
    def _read(connection: sqlite3.Connection, key: str, now: float) -> BucketState:
        row = connection.execute(
            "SELECT request_tat, token_tat FROM rate_limiter_buckets WHERE key = ?", (key,)
        ).fetchone()
        return BucketState.full(now) if row is None else BucketState(request_tat=row[0], token_tat=row[1])

    @staticmethod
    def _write(connection: sqlite3.Connection, key: str, state: BucketState) -> None:
        connection.execute(
            "INSERT INTO rate_limiter_buckets (key, request_tat, token_tat) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET "
            "request_tat = excluded.request_tat, token_tat = excluded.token_tat",
            (key, state.request_tat, state.token_tat),
        )
