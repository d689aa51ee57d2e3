"""Request hashes are attached to collected rows by walking the keys in step with the results."""

from __future__ import annotations

import polars as pl

from batch_pipelines.components.collection import HashCursor

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
