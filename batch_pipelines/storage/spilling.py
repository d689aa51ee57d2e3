"""Set operations over a partition's ids in bounded memory: DuckDB with a memory limit, spilling to disk.

A partition's ids (and request hashes) grow with its rows: at 5 million rows, holding them as polars
columns or hash sets costs hundreds of MB per pass. DuckDB's grouping, sorting and joins spill to a
temporary folder once they pass `memory_limit`, so the same queries take about the same memory at 1M and
at 5M rows (see README "Performance"). Queries read Parquet files by path: `sql_path` quotes one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import duckdb

# Well above what the queries need to run fast (grouping 5M ids takes ~0.5 s within it), well below what
# holding the ids would cost.
MEMORY_LIMIT = "128MB"


@contextlib.contextmanager
def spilling_duckdb(folder: Path, memory_limit: str = MEMORY_LIMIT) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB database that spills to `folder` beyond `memory_limit`."""
    connection = duckdb.connect(
        config={
            "memory_limit": memory_limit,
            "temp_directory": str(folder),
            "preserve_insertion_order": False,  # (ordered output is asked for with ORDER BY where it matters)
            "threads": 2,
        }
    )
    try:
        yield connection
    finally:
        connection.close()


def sql_path(path: Path) -> str:
    """`path` as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"
