"""A ticket pipeline for the fault suite: seeded input rows (some carrying permanent-fault markers), the
spec, an in-process driver, and figures read back from the Parquet tree with DuckDB."""

from __future__ import annotations

import random
import zlib
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from batch_pipelines.components import BatchEngineResource, DuckDBResource, key_from_environment
from batch_pipelines.demo.driver import PipelineDriver
from batch_pipelines.pipeline import PipelineSpec, parse_pipeline_spec
from batch_pipelines_tests.reliability.figures import Figures

PIPELINE = "reliability"
FIRST_DAY = date(2026, 11, 1)
SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"enum": ["billing", "delivery", "account", "other"]},
        "urgency": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["category", "urgency"],
}
INVALID_MARKER = "[[emulator:invalid_request]]"


def days(count: int) -> list[str]:
    return [(FIRST_DAY + timedelta(days=offset)).isoformat() for offset in range(count)]


def pipeline_spec(partitions: int, **changes: Any) -> PipelineSpec:
    declaration: dict[str, Any] = {
        "name": PIPELINE,
        "source": {"path": "data/*.parquet"},
        "partitions": {
            "daily": {
                "column": "created_at",
                "start_date": FIRST_DAY.isoformat(),
                "end_date": (FIRST_DAY + timedelta(days=partitions)).isoformat(),
            }
        },
        "id_column": "ticket_id",
        "prompt": {"system": "Triage the support ticket.", "user": "{subject}\n\n{body}"},
        "provider": "openai",
        "model": "gpt-4o-mini",
        "params": {"max_tokens": 40},
        "response_schema": SCHEMA,
    }
    declaration.update(changes)
    return parse_pipeline_spec(declaration)


def write_tickets(
    workdir: Path, *, partitions: int, rows_per_partition: int, invalid_share: float, seed: int
) -> pl.DataFrame:
    """Rows over `partitions` days; a seeded `invalid_share` of them carry the permanent-fault marker."""
    draw = random.Random(seed)
    rows = []
    for day in range(partitions):
        start = datetime.combine(FIRST_DAY, datetime.min.time()) + timedelta(days=day)
        for index in range(rows_per_partition):
            body = f"Order {day}-{index} arrived damaged; please advise."
            if draw.random() < invalid_share:
                body = f"{INVALID_MARKER} {body}"
            rows.append(
                {
                    "ticket_id": f"d{day}-{index:06d}",
                    "created_at": start + timedelta(seconds=index * 86_400 // rows_per_partition),
                    "subject": f"Ticket {index} of day {day}",
                    "body": body,
                }
            )
    frame = pl.DataFrame(rows)
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    frame.write_parquet(workdir / "data" / "tickets.parquet")
    return frame


def make_driver(
    spec: PipelineSpec,
    base_url: str,
    workdir: Path,
    instance: dg.DagsterInstance,
    api_key: str = "sk-test",
    store_url: str | None = None,
) -> PipelineDriver:
    engine = BatchEngineResource(
        api_key=key_from_environment(f"BATCH_PIPELINES_TEST_KEY_{zlib.crc32(api_key.encode()):08x}", api_key),
        base_url=base_url,
        workdir=str(workdir),
        store_url=store_url,
    )
    return PipelineDriver(spec, engine, instance, log=lambda _line: None, dagster_log_level="ERROR")


def batch_figures(
    scenario: str, workdir: Path, input_ids: set[tuple[str, str]], *, wasted_calls: int, provider_calls: int
) -> Figures:
    """Figures for one pipeline's Parquet tree: `input_ids` are (partition_key, id) pairs that went in."""
    with DuckDBResource(workdir=str(workdir)).get_connection() as connection:
        answered = connection.execute(
            "SELECT partition_key, id, attempt, cost_usd FROM results WHERE pipeline = ?", [PIPELINE]
        ).fetchall()
        dead = connection.execute(
            "SELECT partition_key, id, error_type, transient FROM dead_letters WHERE pipeline = ?", [PIPELINE]
        ).fetchall()
    answered_keys = [(row[0], row[1]) for row in answered]
    dead_keys = {(row[0], row[1]) for row in dead}
    reasons: Counter[str] = Counter(
        f"{error_type}{' (transient, attempts used up)' if transient else ''}"
        for *_, error_type, transient in dead
    )
    settled = set(answered_keys) | dead_keys
    return Figures(
        scenario=scenario,
        path="batch",
        items_in=len(input_ids),
        with_result=len(set(answered_keys)),
        dead_letter_reasons=reasons,
        lost=len(input_ids - settled),
        # A result row beyond the first per item, or an item both answered and dead-lettered.
        duplicate_rows=len(answered_keys) - len(set(answered_keys)) + len(set(answered_keys) & dead_keys),
        wasted_calls=wasted_calls,
        provider_calls=provider_calls,
        retry_usd=sum(row[3] or 0.0 for row in answered if row[2] > 1),
        total_usd=sum(row[3] or 0.0 for row in answered),
    )
