"""The DuckDB stage of benchmarks/million.py: what a user runs once the results are written, a count and a
cost sum over the partition through the catalog `batch-pipelines query` opens. Its own module, so the stage
imports what such a query needs and not Dagster (as the CLI's `query` does not).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.views import read_only_catalog


def duckdb_stage(state: dict[str, Any]) -> dict[str, Any]:
    layout = StorageLayout.for_workdir(Path(state["workdir"]))
    with read_only_catalog(layout) as connection:
        started = time.perf_counter()
        rows, cost = connection.execute(
            "SELECT count(*), sum(cost_usd) FROM results WHERE pipeline = 'million'"
        ).fetchone() or (0, 0.0)
        took = time.perf_counter() - started
    assert rows == state["rows"], f"results hold {rows} rows, expected {state['rows']}"
    return {"result_rows": rows, "cost_usd": round(float(cost or 0.0), 4), "query_s": took}
