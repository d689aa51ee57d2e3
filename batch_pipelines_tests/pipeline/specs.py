"""A valid declaration that tests copy and spoil one field at a time."""

from __future__ import annotations

import copy
from typing import Any

VALID: dict[str, Any] = {
    "name": "tickets",
    "source": {"path": "data/*.parquet"},
    "partitions": {"daily": {"column": "created_at", "start_date": "2026-11-01"}},
    "id_column": "ticket_id",
    "prompt": {"system": "You triage tickets.", "user": "Subject: {subject}\n{body}"},
    "provider": "openai",
    "model": "gpt-4o-mini",
    "params": {"max_tokens": 20},
}


def declaration(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    data.update(changes)
    return data
