"""What the provider (the emulator) saw, read back through its own OpenAI API: every batch created, the
requests each carried and the answers each returned. Independent of our store, so it can catch a
duplicate our own bookkeeping would hide."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class ProviderLedger:
    batches: int = 0
    lines_sent: int = 0
    # custom_id -> the creation-ordered list of (batch id, answered successfully in that batch)
    history: dict[str, list[tuple[str, bool]]] = field(default_factory=lambda: defaultdict(list))

    @property
    def wasted_calls(self) -> int:
        """Requests sent for an item after a batch had already answered it, plus second paid answers."""
        wasted = 0
        for sends in self.history.values():
            first = next((index for index, (_batch, ok) in enumerate(sends) if ok), None)
            if first is not None:
                wasted += len(sends) - first - 1
        return wasted

    def batches_holding(self, custom_id: str) -> list[str]:
        return [batch for batch, _ok in self.history.get(custom_id, [])]


def read_openai_ledger(base_url: str, api_key: str = "sk-ledger") -> ProviderLedger:
    """`base_url` is the emulator's OpenAI base (…/v1). Batches are read oldest first."""
    ledger = ProviderLedger()
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=60
    ) as client:
        batches: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 100, **({"after": after} if after else {})}
            page = client.get("/batches", params=params).raise_for_status().json()
            batches.extend(page["data"])
            if not page["has_more"]:
                break
            after = page["last_id"]
        for batch in sorted(batches, key=_creation_order):
            ledger.batches += 1
            answered: set[str] = set()
            if batch.get("output_file_id"):
                for line in _lines(client, str(batch["output_file_id"])):
                    response = line.get("response") or {}
                    if response.get("status_code") == 200:
                        answered.add(line["custom_id"])
            for line in _lines(client, str(batch["input_file_id"])):
                ledger.lines_sent += 1
                ledger.history[line["custom_id"]].append((str(batch["id"]), line["custom_id"] in answered))
    return ledger


def _creation_order(batch: dict[str, Any]) -> tuple[int, int, str]:
    """`created_at` is whole seconds, so two attempts of a job created within one second tie on it; the
    attempt number the pipeline tags each batch with breaks the tie (it counts up, never down)."""
    attempt = int((batch.get("metadata") or {}).get("bp_attempt", 0))
    return int(batch["created_at"]), attempt, str(batch["id"])


def _lines(client: httpx.Client, file_id: str) -> list[dict[str, Any]]:
    """The file's JSON lines; a damaged line (a test may damage output on purpose) is no answer."""
    parsed = []
    for line in client.get(f"/files/{file_id}/content").raise_for_status().text.splitlines():
        try:
            parsed.append(json.loads(line))
        except ValueError:
            continue
    return parsed
