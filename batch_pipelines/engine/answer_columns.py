"""How one request's answer (a BatchResult) is kept in a SQL row: the columns and the mapping both ways.

The engine's store and the realtime work queue keep answers in the same shape, so both use this.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from batch_pipelines.engine.models import BatchResult


def answer_columns() -> list[sa.Column[Any]]:
    """Fresh Column objects (a SQLAlchemy column belongs to one table) for a result table."""
    return [
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("response", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("error_type", sa.String(50)),
        sa.Column("retryable", sa.Boolean, nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float),
        sa.Column("parsed", sa.Text),
        sa.Column("embedding", sa.Text),
    ]


def answer_values(result: BatchResult) -> dict[str, Any]:
    return {
        "attempt": result.attempt,
        "response": result.response,
        "error": result.error,
        "error_type": result.error_type,
        "retryable": result.retryable,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": result.cost_usd,
        "parsed": json.dumps(result.parsed) if result.parsed is not None else None,
        "embedding": json.dumps(result.embedding) if result.embedding is not None else None,
    }


def result_from_answer(result_id: str, row: Any, provider_batch_id: str | None = None) -> BatchResult:
    return BatchResult(
        id=result_id,
        response=row["response"],
        error=row["error"],
        error_type=row["error_type"],
        retryable=bool(row["retryable"]),
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cost_usd=row["cost_usd"],
        parsed=json.loads(row["parsed"]) if row["parsed"] is not None else None,
        embedding=json.loads(row["embedding"]) if row["embedding"] is not None else None,
        attempt=row["attempt"],
        provider_batch_id=provider_batch_id,
    )
