"""`batch-pipelines doctor [--workdir DIR]`: what in a working folder the views and runs cannot use.

It names stray files (Parquet in the local tables' folders that no run recorded: the views ignore them),
recorded files that cannot be read (left out of the views until a re-run rewrites the partition), and a
store file that cannot be opened. Exit status 1 when it found something, 0 when all is well.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from batch_pipelines.console.safe_text import strip_controls
from batch_pipelines.engine import BatchStore
from batch_pipelines.engine.store_file import StoreFileError
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.locations import DataLocations, add_location_options
from batch_pipelines.storage.partition_catalog import CATALOGUED_TABLES, recorded_files
from batch_pipelines.storage.views import view_sources


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="list stray or unreadable table files and an unusable store in the working folder",
        description="Check a working folder: stray and unreadable Parquet files, and the batch store.",
    )
    add_location_options(parser, tables=False)
    parser.set_defaults(handler=doctor_command)


def doctor_command(args: argparse.Namespace) -> int:
    locations = DataLocations.from_args(args)
    layout = locations.local_layout  # (tables on S3 are read by prefix: no catalog to hold them to)
    problems = [*store_problems(locations), *file_problems(layout)]
    for problem in problems:
        print(strip_controls(problem))
    if not problems:
        print(f"{layout.workdir}: no stray or unreadable files; the store opens")
    return 1 if problems else 0


def store_problems(locations: DataLocations) -> list[str]:
    if not locations.store_exists():
        return []

    async def open_and_close() -> None:
        store = BatchStore(locations.store_location())
        try:
            await store.initialize()
        finally:
            await store.close()

    try:
        asyncio.run(open_and_close())
    except StoreFileError as error:
        return [f"store: {error}"]
    return []


def file_problems(layout: StorageLayout) -> list[str]:
    roots = {table: layout.table_root(table) for table in CATALOGUED_TABLES}
    recorded = recorded_files(layout.workdir, roots)
    known = {file.path.resolve() for file in recorded}
    folders = {(table, root) for table, root in roots.items()}
    folders |= {(file.table, file.path.parent.parent) for file in recorded}
    problems = [
        f"stray: {path} is in the {table} folder but no run wrote it; the {table} view ignores it "
        "(delete it, or move it out of the folder)"
        for table, root in sorted(folders)
        for path in sorted(root.glob("*/*.parquet"))
        if path.resolve() not in known
    ]
    problems += [f"unreadable: {file.message()}" for file in view_sources(layout).unreadable]
    return problems
