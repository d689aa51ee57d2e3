"""The work queue's tables (SQLAlchemy Core) and how results and requests are stored in them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from batch_pipelines.engine.answer_columns import (
    add_missing_table_columns,
    answer_columns,
    answer_values,
    result_from_answer,
)
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
    *answer_columns(),
    sa.Column("written_at", sa.Float, nullable=False),
    sa.Column("path", sa.String(20)),  # "realtime" or "packed"; NULL in rows written before it existed
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
        **answer_values(result),
        "written_at": now,
        "path": result.path,
    }


def result_from_row(row: Any) -> BatchResult:
    result = result_from_answer(row["item_id"], row)
    result.path = row["path"]
    return result


def add_missing_columns(conn: Connection) -> None:
    """Nullable columns added to the results table since a queue file (or ledger) was created:
    create_all adds tables, not columns."""
    add_missing_table_columns(conn, results)
