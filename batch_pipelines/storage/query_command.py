"""`batch-pipelines query [--workdir DIR] [--format table|csv|json] "SQL"`: read-only SQL over the views.

The views read the working folder, or the shared deployment named by --store-url / --storage-url (or
their environment variables, see storage.locations): PostgreSQL for `jobs`/`costs`, S3 for the tables."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any, TextIO

import duckdb

from batch_pipelines.console.safe_text import strip_controls
from batch_pipelines.storage.locations import DataLocations, add_location_options
from batch_pipelines.storage.views import ViewSources, read_only_catalog


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "query",
        help="run read-only SQL over results, dead_letters, rejects, jobs and costs",
        description="Run one read-only DuckDB query over results, dead_letters, rejects, jobs, costs.",
    )
    parser.add_argument("sql", help='e.g. "SELECT pipeline, count(*) FROM results GROUP BY ALL"')
    add_location_options(parser)
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.add_argument("--json", action="store_true", help="print JSON (the same as --format json)")
    parser.set_defaults(handler=run_query_command)


def run_query_command(args: argparse.Namespace) -> int:
    if not args.sql.strip():
        print(
            'error: the SQL is empty; give one statement, e.g. "SELECT * FROM results LIMIT 5"',
            file=sys.stderr,
        )
        return 2
    try:
        locations = DataLocations.from_args(args)
        layout = locations.layout
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        from batch_pipelines.storage.jobs_snapshot import refresh_jobs_snapshot

        refresh_jobs_snapshot(layout, locations.store_location())
        sources = ViewSources()
        with read_only_catalog(layout, locations.duckdb_s3(), sources) as connection:
            for unreadable in sources.unreadable:
                print(f"warning: {unreadable.message()}", file=sys.stderr)
            cursor = connection.execute(args.sql)
            columns = [column[0] for column in cursor.description or []]
            rows = cursor.fetchall()
    except duckdb.Error as error:
        print(f"query failed: {error}", file=sys.stderr)
        return 1
    write_rows(columns, rows, "json" if args.json else args.format, sys.stdout)
    return 0


def write_rows(columns: list[str], rows: list[tuple[Any, ...]], output_format: str, out: TextIO) -> None:
    if output_format == "csv":
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows(rows)
    elif output_format == "json":
        json.dump([dict(zip(columns, row, strict=True)) for row in rows], out, default=str, indent=2)
        out.write("\n")
    else:
        _write_table(columns, rows, out)


def _write_table(columns: list[str], rows: list[tuple[Any, ...]], out: TextIO) -> None:
    cells = [["" if value is None else strip_controls(str(value)) for value in row] for row in rows]
    widths = [max([len(name), *(len(row[index]) for row in cells)]) for index, name in enumerate(columns)]
    out.write(
        "  ".join(name.ljust(width) for name, width in zip(columns, widths, strict=True)).rstrip() + "\n"
    )
    out.write("  ".join("-" * width for width in widths) + "\n")
    for row in cells:
        out.write(
            "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip() + "\n"
        )
    out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")
