"""Checks on a BatchStore's SQLite file, so a store that cannot be used is named, never replaced: an empty
(0-byte) or corrupt file would otherwise read as a store with no jobs, and the history would silently
start again from zero.

A new store file is built beside its place and linked in whole (`create_store_file`), so a store file
is never legitimately empty, even while several processes open a new one together."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import sqlalchemy as sa

from batch_pipelines.engine.errors import BatchEngineError

RECOVERY = (
    "restore it from a backup, or move it aside (e.g. `mv {path} {path}.broken`) to start a new store: "
    "the result files are kept, and a re-run skips every item they already answer"
)


class StoreFileError(BatchEngineError):
    """The store's file exists but cannot be used as a store; the message names it and how to recover."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        super().__init__(f"batch store {path} {problem}: {RECOVERY.format(path=path)}")


def sqlite_file_of(url: str) -> Path | None:
    """The file a sqlite URL names (None for other databases and for memory)."""
    parsed = sa.make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def check_store_file(path: Path) -> None:
    """Refuse a store file that is empty (0 bytes with no write-ahead log holding its pages) or whose
    folder cannot hold one."""
    if path.is_dir():
        raise StoreFileError(path, "is a folder, not a file")
    if not path.parent.is_dir():
        problem = "cannot be created: its folder is a file" if path.parent.exists() else "has no folder"
        raise StoreFileError(path, problem)
    wal = path.with_name(path.name + "-wal")
    if path.exists() and path.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size > 0):
        raise StoreFileError(path, "is empty (0 bytes) though a store was expected")
    if not os.access(path.parent, os.W_OK):
        raise StoreFileError(path, f"is in a folder this user cannot write ({path.parent})")


def unusable_store(path: Path, error: sa.exc.DBAPIError) -> StoreFileError:
    """The error to raise when SQLite refuses the file itself (not a database, malformed, unreadable)."""
    reason = str(error.orig) if error.orig is not None else str(error)
    return StoreFileError(path, f"cannot be read as a store ({reason})")


def create_store_file(path: Path, create_tables: Callable[[sa.Engine], None]) -> None:
    """Create the store at `path` with its tables, in one step: built as a temporary file, then linked
    into place unless another process linked its own first."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.new")
    engine = sa.create_engine(f"sqlite:///{temporary}")
    try:
        create_tables(engine)
    finally:
        engine.dispose()
    # Its owner's alone: it holds every prompt and answer (SQLite gives its WAL files the same mode).
    temporary.chmod(0o600)
    try:
        with suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
