"""The local provider's batches, shared by the provider (any process) and its background worker.

One SQLite file under the batches folder; each batch also has a folder with ``input.jsonl`` and, as
the worker goes, the vectors' Parquet parts (vector_parts.py) and ``errors.jsonl`` in the OpenAI batch
output format. Statuses use OpenAI's words: validating (queued) -> in_progress -> completed | failed,
and cancelling -> cancelled.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

QUEUED = "validating"
RUNNING = "in_progress"
ENDED = ("completed", "failed", "cancelled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    model_path TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    ended_at REAL,
    total INTEGER NOT NULL,
    completed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    tags TEXT NOT NULL,
    options TEXT NOT NULL,
    error_code TEXT,
    error_message TEXT
)
"""


@dataclass(slots=True)
class LocalBatch:
    id: str
    model: str
    model_path: str
    status: str
    created_at: float
    total: int
    completed: int = 0
    failed: int = 0
    input_tokens: int = 0
    ended_at: float | None = None
    cancel_requested: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    error_code: str | None = None
    error_message: str | None = None


class BatchTable:
    """Batches under ``root`` (created on first use)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.execute(_SCHEMA)

    def folder(self, batch_id: str) -> Path:
        return self.root / batch_id

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.root / "batches.db", timeout=30, isolation_level=None)
        connection.row_factory = sqlite3.Row
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("BEGIN IMMEDIATE")
            yield connection
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        finally:
            connection.close()

    def add(
        self,
        *,
        model: str,
        model_path: Path,
        input_lines: bytes,
        total: int,
        tags: dict[str, str],
        options: dict[str, Any],
    ) -> LocalBatch:
        batch = LocalBatch(
            id=f"local_batch_{uuid.uuid4().hex}",
            model=model,
            model_path=str(model_path),
            status=QUEUED,
            created_at=time.time(),
            total=total,
            tags=dict(tags),
            options=dict(options),
        )
        folder = self.folder(batch.id)
        folder.mkdir(parents=True)
        (folder / "input.jsonl").write_bytes(input_lines)
        with self._connect() as connection:
            connection.execute(
                "INSERT INTO batches (id, model, model_path, status, created_at, total, tags, options) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    batch.id,
                    batch.model,
                    batch.model_path,
                    batch.status,
                    batch.created_at,
                    batch.total,
                    json.dumps(batch.tags),
                    json.dumps(batch.options),
                ),
            )
        return batch

    def get(self, batch_id: str) -> LocalBatch | None:
        with self._connect() as connection:
            row = connection.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return _batch(row) if row else None

    def recent(self, created_after: float) -> list[LocalBatch]:
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT * FROM batches WHERE created_at >= ? ORDER BY created_at", (created_after,)
            ).fetchall()
        return [_batch(row) for row in rows]

    def has_unfinished(self) -> bool:
        with self._connect() as connection:
            row = connection.execute(
                "SELECT 1 FROM batches WHERE status IN (?, ?, 'cancelling') LIMIT 1", (QUEUED, RUNNING)
            ).fetchone()
        return row is not None

    def cancel(self, batch_id: str) -> None:
        """A queued batch is cancelled at once; a running one when the worker next looks."""
        with self._connect() as connection:
            connection.execute(
                "UPDATE batches SET status = 'cancelled', cancel_requested = 1, ended_at = ? "
                "WHERE id = ? AND status = ?",
                (time.time(), batch_id, QUEUED),
            )
            connection.execute(
                "UPDATE batches SET status = 'cancelling', cancel_requested = 1 WHERE id = ? AND status = ?",
                (batch_id, RUNNING),
            )

    # -- the worker's side ---------------------------------------------------------------------------

    def requeue_interrupted(self) -> None:
        """Batches a dead worker left running go back to the queue (their output so far is kept)."""
        with self._connect() as connection:
            connection.execute("UPDATE batches SET status = ? WHERE status = ?", (QUEUED, RUNNING))
            connection.execute(
                "UPDATE batches SET status = 'cancelled', ended_at = ? WHERE status = 'cancelling'",
                (time.time(),),
            )

    def claim_next(self) -> LocalBatch | None:
        with self._connect() as connection:
            row = connection.execute(
                "SELECT * FROM batches WHERE status = ? ORDER BY created_at LIMIT 1", (QUEUED,)
            ).fetchone()
            if row is None:
                return None
            connection.execute("UPDATE batches SET status = ? WHERE id = ?", (RUNNING, row["id"]))
        claimed = _batch(row)
        claimed.status = RUNNING
        return claimed

    def record_progress(self, batch_id: str, *, completed: int, failed: int, input_tokens: int) -> bool:
        """Store the counts; True when cancellation was asked for meanwhile."""
        with self._connect() as connection:
            connection.execute(
                "UPDATE batches SET completed = ?, failed = ?, input_tokens = ? WHERE id = ?",
                (completed, failed, input_tokens, batch_id),
            )
            row = connection.execute(
                "SELECT cancel_requested FROM batches WHERE id = ?", (batch_id,)
            ).fetchone()
        return bool(row and row["cancel_requested"])

    def finish(
        self, batch_id: str, *, error_code: str | None = None, error_message: str | None = None
    ) -> None:
        """End a running batch: failed with an error, else cancelled when asked, else completed."""
        with self._connect() as connection:
            connection.execute(
                "UPDATE batches SET ended_at = ?, error_code = ?, error_message = ?, status = CASE "
                "WHEN ? IS NOT NULL THEN 'failed' WHEN cancel_requested = 1 THEN 'cancelled' "
                "ELSE 'completed' END WHERE id = ?",
                (time.time(), error_code, error_message, error_code, batch_id),
            )


def _batch(row: sqlite3.Row) -> LocalBatch:
    return LocalBatch(
        id=row["id"],
        model=row["model"],
        model_path=row["model_path"],
        status=row["status"],
        created_at=row["created_at"],
        total=row["total"],
        completed=row["completed"],
        failed=row["failed"],
        input_tokens=row["input_tokens"],
        ended_at=row["ended_at"],
        cancel_requested=bool(row["cancel_requested"]),
        tags=json.loads(row["tags"]),
        options=json.loads(row["options"]),
        error_code=row["error_code"],
        error_message=row["error_message"],
    )
