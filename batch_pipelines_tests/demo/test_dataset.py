from __future__ import annotations

from datetime import date

import polars as pl

from batch_pipelines.demo.dataset import DEMO_DAYS, DEMO_START, generate_tickets


def test_dataset_is_deterministic_and_spans_the_demo_week() -> None:
    tickets = generate_tickets()
    assert tickets.equals(generate_tickets())
    assert not tickets.equals(generate_tickets(seed=1))
    assert 2_000 <= tickets.height <= 5_000
    days = tickets["created_at"].dt.date().unique().sort().to_list()
    assert days[0] == DEMO_START and len(days) == DEMO_DAYS and days[-1] == date(2026, 11, 7)


def test_dataset_carries_a_few_bad_rows_for_the_rejects_table() -> None:
    tickets = generate_tickets()
    assert 0 < tickets["body"].null_count() < tickets.height // 100
    assert tickets.filter(pl.col("ticket_id").is_duplicated()).height == 2
