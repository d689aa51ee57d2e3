"""The work queue's tables (SQLAlchemy Core) and how results and requests are stored in them."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from batch_pipelines.engine.models import BatchResult

PENDING = "pending"
LEASED = "leased"
DONE = "done"
DEAD = "dead"

metadata = sa.MetaData()

items = sa.Table(
    "rt_items",
    metadata,
    sa.Column("queue", sa.String(200), primary_key=True),
    sa.Column("item_id", sa.String(200), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    # When the item may be leased: a pending item once its retry delay has passed, a leased one when its
    # lease expires; NULL once done or dead.
    sa.Column("visible_at", sa.Float),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_token", sa.String(40)),
    sa.Column("last_error", sa.Text),
)
OPEN_STATES = (PENDING, LEASED)
_open = sa.text(f"state IN ('{PENDING}', '{LEASED}')")
# Partial indexes over open items only, so finished items cost nothing however many there are: the next
# lease walks the first one in priority order, the next wake-up the second.
sa.Index("rt_items_next", items.c.queue, items.c.priority.desc(), items.c.seq, sqlite_where=_open)
sa.Index("rt_items_wakeup", items.c.queue, items.c.visible_at, sqlite_where=_open)

results = sa.Table(
    "rt_results",
    metadata,
    sa.Column("queue", sa.String(200), primary_key=True),
    sa.Column("item_id", sa.String(200), primary_key=True),
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
    sa.Column("written_at", sa.Float, nullable=False),
)

dead_letters = sa.Table(
    "rt_dead_letters",
    metadata,
    sa.Column("queue", sa.String(200), primary_key=True),
    sa.Column("item_id", sa.String(200), primary_key=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("error_type", sa.String(50)),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("dead_at", sa.Float, nullable=False),
)


def result_row(queue: str, result: BatchResult, now: float) -> dict[str, Any]:
    return {
        "queue": queue,
        "item_id": result.id,
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
        "written_at": now,
    }


def result_from_row(row: Any) -> BatchResult:
    return BatchResult(
        id=row["item_id"],
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
    )
