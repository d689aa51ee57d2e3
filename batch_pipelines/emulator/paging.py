"""Query-parameter checks and list envelopes shared by the list endpoints."""

from __future__ import annotations

from typing import Any

from batch_pipelines.emulator.errors import invalid


def int_param(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    if not raw.lstrip("-").isdigit() or not low <= int(raw) <= high:
        raise invalid(
            f"Invalid '{name}': expected an integer between {low} and {high}, got {raw!r}.", param=name
        )
    return int(raw)


def page_envelope(data: list[dict[str, Any]], has_more: bool, openai: bool = True) -> dict[str, Any]:
    envelope: dict[str, Any] = {"object": "list"} if openai else {}
    envelope.update(
        data=data,
        first_id=data[0]["id"] if data else None,
        last_id=data[-1]["id"] if data else None,
        has_more=has_more,
    )
    return envelope
