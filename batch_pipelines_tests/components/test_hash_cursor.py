"""Request hashes are attached to collected rows by walking the keys in step with the results."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from batch_pipelines.components.collection import (
    HashCursor,
    dead_row_schema,
    result_row,
    results_row_schema,
    write_partition_tables,
)
from batch_pipelines.engine import BatchResult
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines_tests.components.conftest import ticket_spec

KEYS = pl.DataFrame({"id": ["a", "b", "c", "d"], "request_hash": ["ha", "hb", "hc", "hd"]})


def test_results_in_key_order_find_their_hashes_skipping_settled_ids() -> None:
    cursor = HashCursor(KEYS.iter_rows())
    assert [cursor.hash_of(item_id) for item_id in ("b", "d")] == ["hb", "hd"]
    assert cursor.in_step


def test_a_result_out_of_step_gives_no_hash_and_hands_over_to_the_join() -> None:
    cursor = HashCursor(KEYS.iter_rows())
    assert cursor.hash_of("c") == "hc"
    assert cursor.hash_of("a") is None  # behind the walk: the walk cannot go back
    assert not cursor.in_step
    assert cursor.hash_of("d") is None  # and stays over, so no row gets a wrong hash


def test_rows_out_of_step_take_their_hash_from_the_saved_keys_file(tmp_path: Path) -> None:
    """The join that stands in for the walk reads the keys file as submission saved it (with its job_id
    column); each row keeps its own job id and gets the hash of its own id."""
    spec = ticket_spec(response_schema=None)
    layout = StorageLayout.for_workdir(tmp_path / "work")
    saved = tmp_path / "keys.parquet"
    KEYS.with_columns(job_id=pl.lit("tickets.2026-11-01.saved")).write_parquet(saved)
    rows = pl.DataFrame(
        [
            result_row(spec, "2026-11-01", "tickets.2026-11-01.now", answer(item_id), "v1", "batch")
            for item_id in "db"
        ],
        schema=results_row_schema(spec),
    )
    dead = pl.DataFrame(schema=dead_row_schema())
    tables = write_partition_tables(
        spec,
        layout,
        "2026-11-01",
        pl.scan_parquet(saved),
        rows.lazy(),
        dead.lazy(),
        pl.LazyFrame({"id": ["d", "b"]}, schema={"id": pl.String}),
    )
    written = tables.results.collect()
    assert written.select("id", "request_hash", "job_id").rows() == [
        ("d", "hd", "tickets.2026-11-01.now"),
        ("b", "hb", "tickets.2026-11-01.now"),
    ]


def answer(item_id: str) -> BatchResult:
    return BatchResult(id=item_id, response="billing", input_tokens=3, output_tokens=1, attempt=1)
