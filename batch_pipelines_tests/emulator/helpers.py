"""Small helpers the emulator tests share: input files and polling with a deadline."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import openai

T = TypeVar("T")

OPENAI_TERMINAL = ("completed", "failed", "expired", "cancelled")


def chat_line(custom_id: str, prompt: str, model: str = "gpt-4o-mini") -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 64}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def upload(client: openai.OpenAI, lines: list[dict[str, Any]], name: str = "input.jsonl") -> str:
    return client.files.create(file=(name, io.BytesIO(jsonl(lines))), purpose="batch").id


def wait_until(fetch: Callable[[], T], done: Callable[[T], bool], timeout_s: float = 20.0) -> T:
    """Poll ``fetch`` until ``done`` holds for its value; fail with the last value after the deadline."""
    deadline = time.monotonic() + timeout_s
    value = fetch()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout_s}s; last value: {value!r}")
        time.sleep(0.02)
        value = fetch()
    return value


def wait_for_batch(client: openai.OpenAI, batch_id: str, timeout_s: float = 20.0) -> Any:
    return wait_until(
        lambda: client.batches.retrieve(batch_id), lambda b: b.status in OPENAI_TERMINAL, timeout_s
    )


def parse_jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
