"""The demo's shipped dataset: synthetic support tickets over a week, generated the same way every time.

A few rows are bad on purpose (a missing body, a repeated ticket id) so the rejects table has something to
show.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from batch_pipelines.storage.parquet_files import write_parquet_atomic

DEMO_START = date(2026, 11, 1)
DEMO_DAYS = 7
DEFAULT_ROWS_PER_DAY = 400
DEMO_SEED = 20261101

_PRODUCTS = ("invoice", "dashboard", "mobile app", "API key", "export", "single sign-on", "webhook", "plan")
_PROBLEMS = {
    "billing": ("I was charged twice for my {product}", "Refund needed for the {product} upgrade"),
    "bug": ("The {product} crashes when I open it", "Error 500 from the {product} since this morning"),
    "account": ("Cannot log in with {product}", "Please transfer ownership of our {product}"),
    "feature_request": ("Could the {product} support dark mode?", "Please add CSV import to the {product}"),
    "other": ("Question about your {product}", "Feedback on the new {product}"),
}
_TIERS = ("free", "pro", "enterprise")


def generate_tickets(
    *,
    seed: int = DEMO_SEED,
    start: date = DEMO_START,
    days: int = DEMO_DAYS,
    rows_per_day: int = DEFAULT_ROWS_PER_DAY,
) -> pl.DataFrame:
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    number = 0
    for day in range(days):
        midnight = datetime.combine(start + timedelta(days=day), datetime.min.time())
        for _ in range(rows_per_day + rng.randint(-rows_per_day // 10, rows_per_day // 10)):
            number += 1
            topic = rng.choice(tuple(_PROBLEMS))
            product = rng.choice(_PRODUCTS)
            subject = rng.choice(_PROBLEMS[topic]).format(product=product)
            body = f"{subject}. " + rng.choice(
                ("It started after the last update.", "This blocks my whole team.", "No rush, just curious.")
            )
            rows.append(
                {
                    "ticket_id": f"T{number:06d}",
                    "created_at": midnight + timedelta(seconds=rng.randrange(86_400)),
                    "subject": subject,
                    "body": body,
                    "tier": rng.choice(_TIERS),
                }
            )
    _spoil_a_few(rows, rng)
    return pl.DataFrame(
        rows,
        schema={
            "ticket_id": pl.String,
            "created_at": pl.Datetime("us"),
            "subject": pl.String,
            "body": pl.String,
            "tier": pl.String,
        },
    )


def _spoil_a_few(rows: list[dict[str, object]], rng: random.Random) -> None:
    for index in rng.sample(range(len(rows)), k=max(1, len(rows) // 500)):
        rows[index]["body"] = None
    duplicate = dict(rows[rng.randrange(len(rows))])
    rows.append(duplicate)


def write_demo_dataset(folder: Path, *, rows_per_day: int = DEFAULT_ROWS_PER_DAY) -> Path:
    """Write the tickets as `<folder>/tickets.parquet` (replacing any earlier copy)."""
    return write_parquet_atomic(generate_tickets(rows_per_day=rows_per_day), folder / "tickets.parquet")
