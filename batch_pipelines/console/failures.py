"""How a command ends on an error: one line on stderr naming what went wrong and where, exit status 1, no
traceback. `--debug` (anywhere on the command line) or BATCH_PIPELINES_DEBUG=1 lets the traceback through,
for bug reports."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence

DEBUG_FLAG = "--debug"
DEBUG_ENV = "BATCH_PIPELINES_DEBUG"


def split_debug_flag(arguments: Sequence[str]) -> tuple[list[str], bool]:
    """The arguments without `--debug`, and whether a traceback was asked for (flag or environment).
    The flag sets the environment variable, so a command that reports its own errors sees it too."""
    rest = [word for word in arguments if word != DEBUG_FLAG]
    if len(rest) != len(arguments):
        os.environ[DEBUG_ENV] = "1"
    return rest, debug_requested()


def debug_requested() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def describe(error: BaseException) -> str:
    """The error as one line a user can act on, naming the path when the error carries one."""
    if isinstance(error, PermissionError) and error.filename:
        return f"{error.filename}: permission denied (is the folder read-only, or owned by another user?)"
    if isinstance(error, (NotADirectoryError, FileExistsError)) and error.filename:
        return f"{error.filename}: a file is in the way where a folder is expected"
    if isinstance(error, OSError) and error.filename:
        return f"{error.filename}: {error.strerror or error}"
    if isinstance(error, sqlite3.Error):
        return f"SQLite: {error}"
    text = " ".join(str(error).split())
    return f"{text}" if text else type(error).__name__


def run_reporting_failures(
    handler: Callable[[argparse.Namespace], int], args: argparse.Namespace, debug: bool
) -> int:
    """Run a command's handler; an exception it lets through becomes one line (or, with debug, the
    traceback)."""
    try:
        return handler(args)
    except Exception as error:
        if debug:
            raise
        print(f"error: {describe(error)}", file=sys.stderr)
        if not _explained(error):
            print(f"(for the traceback, run again with {DEBUG_FLAG} or {DEBUG_ENV}=1)", file=sys.stderr)
        return 1


def _explained(error: Exception) -> bool:
    """An error raised on purpose with a message for the user (bad input, an unusable path), as opposed
    to a bug, where the traceback is worth asking for."""
    from batch_pipelines.engine.errors import BatchEngineError

    return isinstance(error, (ValueError, BatchEngineError)) or (
        isinstance(error, OSError) and bool(error.filename)
    )
