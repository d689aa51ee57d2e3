"""How one request's answer (a BatchResult) is kept in a SQL row: the columns and the mapping both ways.

The engine's store and the realtime work queue keep answers in the same shape, so both use this. A
float32 vector (numpy) is kept as its bytes in base64, read back as the same float32 array; a vector
that came as a JSON list stays JSON text.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from batch_pipelines.engine.models import BatchResult, Embedding


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
        sa.Column("cached_input_tokens", sa.Integer),
        sa.Column("cache_write_input_tokens", sa.Integer),
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
        _embedding_text(result.embedding),
        result.cached_input_tokens,
        result.cache_write_input_tokens,
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
        cached_input_tokens,
        cache_write_input_tokens,
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
        embedding=_embedding_from_text(embedding),
        attempt=attempt,
        provider_batch_id=provider_batch_id,
        cached_input_tokens=cached_input_tokens or 0,
        cache_write_input_tokens=cache_write_input_tokens or 0,
    )


def _embedding_text(embedding: Embedding | None) -> str | None:
    if embedding is None:
        return None
    if isinstance(embedding, np.ndarray):
        return base64.b64encode(embedding.astype("<f4", copy=False).tobytes()).decode("ascii")
    return json.dumps(embedding)


def _embedding_from_text(text: str | None) -> Embedding | None:
    if text is None:
        return None
    if text.startswith("["):  # base64 never starts so
        loaded: list[float] = json.loads(text)
        return loaded
    return np.frombuffer(base64.b64decode(text), dtype="<f4")


def add_missing_table_columns(conn: sa.Connection, table: sa.Table) -> None:
    """Add the nullable columns of ``table`` that a database created by an older release lacks
    (``create_all`` adds tables, never columns)."""
    present = {column["name"] for column in sa.inspect(conn).get_columns(table.name)}
    for column in table.columns:
        if column.name not in present and column.nullable:
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))
