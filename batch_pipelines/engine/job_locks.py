"""Exclusive locks on one job, held by one process at a time and released when that process dies.

A PostgreSQL store takes a session advisory lock on a connection kept for the lock's life; a SQLite file
store takes an ``flock`` on a file per job beside the database; an in-memory store, which one process
owns, a lock in that process. The database server or the kernel drops the lock of a process that dies,
so a killed holder never blocks the next one, and a slow holder under load never loses it (there is no
lease to run out while it works).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential


class JobLock(Protocol):
    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; False when another holder has it."""

    def release(self) -> None: ...


def lock_name(job_id: str, purpose: str) -> str:
    return f"{purpose}:{job_id}"


class AdvisoryLock:
    """A PostgreSQL session advisory lock, keyed by a 64-bit hash of the name (a collision between two
    names only makes them take turns)."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
        self._conn: Connection | None = None

    def try_acquire(self) -> bool:
        conn = self.engine.connect()
        try:
            taken = bool(
                conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar()
            )
            conn.commit()
        except BaseException:
            _end_session(conn)  # (it may hold the lock: the answer was lost, not the lock)
            raise
        if not taken:
            conn.close()
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            conn.commit()
        except sa.exc.DBAPIError:
            _end_session(conn)  # the server drops a session's locks with it
        else:
            conn.close()


def _end_session(conn: Connection) -> None:
    """Close the connection for good rather than return it to the pool, where a session lock it still
    held would stay taken for as long as the pool keeps it."""
    conn.invalidate()
    conn.close()


class FileLock:
    """An exclusive ``flock`` on ``folder/<hash of the name>.lock`` (the file stays, empty, for reuse:
    removing it could let a waiter lock a file another process is about to replace)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.path = folder / f"{hashlib.sha1(name.encode()).hexdigest()}.lock"
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # (closing the descriptor drops the flock)


_PROCESS_LOCKS: dict[str, threading.Lock] = {}
_PROCESS_LOCKS_GUARD = threading.Lock()


class ProcessLock:
    """A lock shared by every holder of the same name in this process (for a store only it can see)."""

    def __init__(self, name: str) -> None:
        with _PROCESS_LOCKS_GUARD:
            self._lock = _PROCESS_LOCKS.setdefault(name, threading.Lock())

    def try_acquire(self) -> bool:
        return self._lock.acquire(blocking=False)

    def release(self) -> None:
        self._lock.release()


class JobLockTimeoutError(RuntimeError):
    """Another process held the job's lock for longer than the caller was willing to wait."""


class _LockHeld(Exception):
    pass


@contextlib.asynccontextmanager
async def held(lock: JobLock, wait_s: float, description: str) -> AsyncIterator[None]:
    """Hold ``lock`` for the body, first waiting (polling, a little longer each time up to half a
    second) while another process holds it; raises JobLockTimeoutError after ``wait_s``."""
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(_LockHeld),
        wait=wait_exponential(multiplier=0.01, max=0.5),
        stop=stop_after_delay(wait_s),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                if not await anyio.to_thread.run_sync(lock.try_acquire):
                    raise _LockHeld
    except _LockHeld:
        raise JobLockTimeoutError(
            f"{description}: another process has held it for over {wait_s:.0f}s and still holds it"
        ) from None
    try:
        yield
    finally:
        await anyio.to_thread.run_sync(lock.release)
