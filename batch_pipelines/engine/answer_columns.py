"""How one request's answer (a BatchResult) is kept in a SQL row: the columns and the mapping both ways.

The engine's store and the realtime work queue keep answers in the same shape, so both use this.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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


ANSWER_FIELDS = tuple(column.name for column in answer_columns())


def answer_values(result: BatchResult) -> dict[str, Any]:
    return dict(zip(ANSWER_FIELDS, answer_tuple(result), strict=True))


def answer_tuple(result: BatchResult) -> tuple[Any, ...]:
    """The answer columns' values in `ANSWER_FIELDS` order."""
    return (
        result.attempt,
        result.response,
        result.error,
        result.error_type,
        result.retryable,
        result.input_tokens,
        result.output_tokens,
        result.cost_usd,
        json.dumps(result.parsed) if result.parsed is not None else None,
        json.dumps(result.embedding) if result.embedding is not None else None,
    )


def result_from_answer(result_id: str, row: Any, provider_batch_id: str | None = None) -> BatchResult:
    """The result kept in ``row`` (any mapping of the answer columns' names)."""
    return result_from_answer_values(result_id, [row[name] for name in ANSWER_FIELDS], provider_batch_id)


def result_from_answer_values(
    result_id: str, values: Sequence[Any], provider_batch_id: str | None = None
) -> BatchResult:
    """The result kept in ``values``, the answer columns in `ANSWER_FIELDS` order: reading a million
    results back by position skips building a mapping for each row."""
    (
        attempt,
        response,
        error,
        error_type,
        retryable,
        input_tokens,
        output_tokens,
        cost_usd,
        parsed,
        embedding,
    ) = values
    return BatchResult(
        id=result_id,
        response=response,
        error=error,
        error_type=error_type,
        retryable=bool(retryable),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost_usd,
        parsed=json.loads(parsed) if parsed is not None else None,
        embedding=json.loads(embedding) if embedding is not None else None,
        attempt=attempt,
        provider_batch_id=provider_batch_id,
    )
