"""How the BatchStore lays jobs, provider batches, requests and results out in SQL, and the mapping
between those rows and the engine's records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from batch_pipelines.engine.answer_columns import (
    ANSWER_FIELDS,
    answer_columns,
    answer_tuple,
    result_from_answer_values,
)
from batch_pipelines.engine.models import BatchResult, BatchStatus
from batch_pipelines.engine.pricing import ModelPrice
from batch_pipelines.engine.records import BatchRecord, JobRecord
from batch_pipelines.wire.provider import LineError

OPEN_STATUSES = (BatchStatus.PENDING.value, BatchStatus.PROCESSING.value)

metadata = sa.MetaData()

jobs = sa.Table(
    "bp_jobs",
    metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("provider", sa.String(50), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("open", sa.Boolean, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("prepared", sa.Boolean, nullable=False),
    sa.Column("cancel_requested", sa.Boolean, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("estimated_usd", sa.Float),
    sa.Column("expected_usd", sa.Float),
    sa.Column("forecast_basis", sa.Text),
    sa.Column("counted_input_tokens", sa.BigInteger),
    sa.Column("price_input", sa.Float),
    sa.Column("price_output", sa.Float),
    sa.Column("price_discount", sa.Float),
    sa.Column("metadata", sa.Text, nullable=False),
    sa.Column("response_schema", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("prepare_lease_until", sa.Float),
    # Prompt-cache multipliers of the input price (added later: NULL in older stores means 1.0).
    sa.Column("price_cache_read", sa.Float),
    sa.Column("price_cache_write", sa.Float),
)

batches = sa.Table(
    "bp_provider_batches",
    metadata,
    sa.Column("job_id", sa.String(200), primary_key=True),
    sa.Column("attempt", sa.Integer, primary_key=True),
    sa.Column("chunk", sa.Integer, primary_key=True),
    sa.Column("provider_batch_id", sa.String(200)),
    sa.Column("raw_status", sa.String(40), nullable=False),
    sa.Column("phase", sa.String(20), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("ended", sa.Boolean, nullable=False),
    sa.Column("request_count", sa.Integer, nullable=False),
    sa.Column("byte_count", sa.BigInteger, nullable=False),
    sa.Column("est_tokens", sa.BigInteger, nullable=False),
    sa.Column("completed", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("error_code", sa.String(100)),
    sa.Column("error_message", sa.Text),
    sa.Column("line_errors", sa.Text),
    sa.Column("collected", sa.Boolean, nullable=False),
    sa.Column("recorded_at", sa.Float, nullable=False),
    sa.Column("launch_started_at", sa.Float),
    sa.Column("cached_input_tokens", sa.BigInteger),  # of input_tokens, as the provider reports it
)

requests = sa.Table(
    "bp_requests",
    metadata,
    sa.Column("job_id", sa.String(200), primary_key=True),
    sa.Column("request_id", sa.String(200), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("chunk", sa.Integer, nullable=False),
    sa.Column("line", sa.Integer, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Index("bp_requests_by_chunk", "job_id", "attempt", "chunk", "line"),
    sa.Index("bp_requests_by_seq", "job_id", "seq"),
)

results = sa.Table(
    "bp_results",
    metadata,
    sa.Column("job_id", sa.String(200), primary_key=True),
    sa.Column("request_id", sa.String(200), primary_key=True),
    sa.Column("provider_batch_id", sa.String(200)),
    *answer_columns(),
)

# One row per paid realtime call (engine/spend.py); batch jobs' costs come from their batches' usage.
spend = sa.Table(
    "bp_spend",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("pipeline", sa.String(200)),
    sa.Column("partition_key", sa.String(200)),
    sa.Column("job_id", sa.String(200), nullable=False),
    sa.Column("provider", sa.String(50), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("path", sa.String(20), nullable=False),
    sa.Column("items", sa.Integer, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_usd", sa.Float),
    sa.Column("recorded_at", sa.Float, nullable=False),
)
SPEND_COLUMNS = (
    "pipeline",
    "partition_key",
    "job_id",
    "provider",
    "model",
    "path",
    "items",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "recorded_at",
)

RESULT_KEYS = ("job_id", "request_id")
RESULT_COLUMNS = [c.name for c in results.columns if c.name not in RESULT_KEYS]
assert ["provider_batch_id", *ANSWER_FIELDS] == RESULT_COLUMNS  # the order `result_row` writes
REQUEST_COLUMNS = ("job_id", "request_id", "seq", "attempt", "chunk", "line", "payload")


def job_row(job: JobRecord) -> dict[str, Any]:
    price = job.price
    return {
        "id": job.id,
        "provider": job.provider,
        "model": job.model,
        "kind": job.kind,
        "status": job.status.value,
        "detail": job.detail,
        "open": job.status.value in OPEN_STATUSES or job.detail == "cancelling",
        "attempt": job.attempt,
        "prepared": job.prepared,
        "cancel_requested": job.cancel_requested,
        "total": job.total,
        "estimated_usd": job.estimated_usd,
        "expected_usd": job.expected_usd,
        "forecast_basis": job.forecast_basis,
        "counted_input_tokens": job.counted_input_tokens,
        "price_input": price.input_per_million if price else None,
        "price_output": price.output_per_million if price else None,
        "price_discount": price.batch_discount if price else None,
        "price_cache_read": price.cache_read_multiplier if price else None,
        "price_cache_write": price.cache_write_multiplier if price else None,
        "metadata": json.dumps(job.metadata),
        "response_schema": json.dumps(job.response_schema) if job.response_schema is not None else None,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "prepare_lease_until": job.prepare_lease_until,
    }


def job_from_row(row: Any) -> JobRecord:
    price = (
        ModelPrice(
            row["price_input"],
            row["price_output"],
            row["price_discount"],
            cache_read_multiplier=row["price_cache_read"] or 1.0,
            cache_write_multiplier=row["price_cache_write"] or 1.0,
        )
        if row["price_input"] is not None
        else None
    )
    return JobRecord(
        id=row["id"],
        provider=row["provider"],
        model=row["model"],
        kind=row["kind"],
        created_at=row["created_at"],
        attempt=row["attempt"],
        prepared=bool(row["prepared"]),
        cancel_requested=bool(row["cancel_requested"]),
        total=row["total"],
        estimated_usd=row["estimated_usd"],
        expected_usd=row["expected_usd"],
        forecast_basis=row["forecast_basis"],
        counted_input_tokens=row["counted_input_tokens"],
        price=price,
        metadata=json.loads(row["metadata"]),
        response_schema=json.loads(row["response_schema"]) if row["response_schema"] else None,
        status=BatchStatus(row["status"]),
        detail=row["detail"],
        finished_at=row["finished_at"],
        prepare_lease_until=row["prepare_lease_until"],
    )


def batch_row(record: BatchRecord) -> dict[str, Any]:
    return {
        "job_id": record.job_id,
        "attempt": record.attempt,
        "chunk": record.chunk,
        "provider_batch_id": record.provider_batch_id,
        "raw_status": record.raw_status,
        "phase": record.phase.value,
        "detail": record.detail,
        "ended": record.ended,
        "request_count": record.request_count,
        "byte_count": record.byte_count,
        "est_tokens": record.est_tokens,
        "completed": record.completed,
        "failed": record.failed,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "error_code": record.error_code,
        "error_message": record.error_message,
        "line_errors": json.dumps([[e.line, e.code, e.message] for e in record.line_errors]),
        "collected": record.collected,
        "recorded_at": record.recorded_at,
        "launch_started_at": record.launch_started_at,
        "cached_input_tokens": record.cached_input_tokens,
    }


def batch_from_row(row: Any) -> BatchRecord:
    return BatchRecord(
        job_id=row["job_id"],
        attempt=row["attempt"],
        chunk=row["chunk"],
        request_count=row["request_count"],
        byte_count=row["byte_count"],
        est_tokens=row["est_tokens"],
        recorded_at=row["recorded_at"],
        provider_batch_id=row["provider_batch_id"],
        raw_status=row["raw_status"],
        phase=BatchStatus(row["phase"]),
        detail=row["detail"],
        ended=bool(row["ended"]),
        completed=row["completed"],
        failed=row["failed"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        line_errors=[LineError(*e) for e in json.loads(row["line_errors"] or "[]")],
        collected=bool(row["collected"]),
        launch_started_at=row["launch_started_at"],
        cached_input_tokens=row["cached_input_tokens"] or 0,
    )


def result_row(job_id: str, item: BatchResult) -> tuple[Any, ...]:
    """The row of ``results`` in (*RESULT_KEYS, *RESULT_COLUMNS) order."""
    return (job_id, item.id, item.provider_batch_id, *answer_tuple(item))


# A request joined with its stored result, if any (`request_with_result` reads a row of these).
REQUEST_RESULT_COLUMNS = (
    requests.c.seq,
    requests.c.request_id,
    results.c.provider_batch_id,
    *(results.c[name] for name in ANSWER_FIELDS),
)


def request_with_result(row: Sequence[Any]) -> tuple[str, BatchResult | None]:
    """(request id, stored result or None) from a row of `REQUEST_RESULT_COLUMNS`, by position."""
    request_id, provider_batch_id, answer = row[1], row[2], row[3:]
    if answer[0] is None:  # no result row joined (attempt is never null in one)
        return request_id, None
    return request_id, result_from_answer_values(request_id, answer, provider_batch_id)
