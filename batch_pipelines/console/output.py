"""Printing command answers: a rich table by default, JSON with `--json`."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from batch_pipelines.console.safe_text import plain, strip_controls


def console() -> Console:
    """A console on the stdout current at call time (tests capture it)."""
    return Console(file=sys.stdout, soft_wrap=False)


def print_json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=plain(title), title_justify="left")
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(plain(format_cell(value)) for value in row))  # data is never read as markup
    console().print(table)


def format_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6f}" if abs(value) < 1 else f"{value:,.2f}"
    return str(value)


def print_error(message: str) -> None:
    print(strip_controls(message), file=sys.stderr)
