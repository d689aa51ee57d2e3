"""The synthetic partition both sides of benchmarks/million.py process, and the pipeline that reads it.

Rows are generated from their index alone (no randomness), about 300 characters of ticket text each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

PIPELINE = "million"
PARTITION = "p0"
MODEL = "gpt-4o-mini"
SYSTEM_PROMPT = "Classify the support ticket into one word: billing, bug, account, feature or other."
MAX_TOKENS = 16

_PRODUCTS = ("invoice", "dashboard", "mobile app", "API key", "export", "single sign-on", "webhook", "plan")
_OPENINGS = (
    "Since this morning the {product} refuses to load and shows a blank page with a spinner.",
    "We were charged twice for the {product} this month and nobody answered our first email.",
    "Could the {product} support bulk edits? Our team spends hours clicking through it every week.",
    "After the last update the {product} logs us out every few minutes, on every browser we tried.",
)
_DETAILS = (
    " Ticket {index} from account {account}: we have {seats} seats and the problem affects all of them,"
    " so please treat this as blocking. Screenshots and the request ids are attached to this message.",
    " Reference {index}, account {account}, {seats} seats. It worked last week; nothing changed on our"
    " side as far as we know. Happy to join a call if that helps you reproduce it quickly.",
)


def ticket_text(index: int) -> str:
    opening = _OPENINGS[index % len(_OPENINGS)].format(product=_PRODUCTS[index % len(_PRODUCTS)])
    detail = _DETAILS[index % len(_DETAILS)].format(
        index=index, account=f"A{index % 9973:04d}", seats=5 + index % 200
    )
    return opening + detail


def write_partition(folder: Path, rows: int) -> Path:
    """`<folder>/data/tickets.parquet` with `rows` rows: id, partition, text."""
    target = folder / "data" / "tickets.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    step = 500_000
    frames = []
    for start in range(0, rows, step):
        indices = range(start, min(rows, start + step))
        frames.append(
            pl.DataFrame(
                {
                    "ticket_id": [f"t{index:08d}" for index in indices],
                    "part": [PARTITION] * len(indices),
                    "text": [ticket_text(index) for index in indices],
                }
            )
        )
    pl.concat(frames).write_parquet(target)
    return target


def pipeline_declaration() -> dict[str, Any]:
    return {
        "name": PIPELINE,
        "source": {"path": "data/*.parquet"},
        "partitions": {"static": {"column": "part", "keys": [PARTITION]}},
        "id_column": "ticket_id",
        "prompt": {"system": SYSTEM_PROMPT, "user": "{text}"},
        "provider": "openai",
        "model": MODEL,
        "params": {"max_tokens": MAX_TOKENS},
    }
