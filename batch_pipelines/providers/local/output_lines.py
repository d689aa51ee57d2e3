"""The local provider's files in OpenAI's batch formats: reading input lines, writing result lines.

Error lines (``errors.jsonl``) and, for readers of the line format only, success lines look like
OpenAI's embeddings batch output, so the same parser reads them. Vectors themselves are kept in Parquet
parts (vector_parts.py), not in these lines.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

EMBEDDINGS_URL = "/v1/embeddings"
ERRORS_FILE = "errors.jsonl"
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def input_items(content: bytes) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(custom_id, text) of each usable line, and (custom_id, reason) of each unusable one."""
    items: list[tuple[str, str]] = []
    invalid: list[tuple[str, str]] = []
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError as error:
            invalid.append((f"line-{number}", f"input line {number} is not JSON: {error}"))
            continue
        custom_id = str(record.get("custom_id") or f"line-{number}")
        body = record.get("body") or {}
        text = body.get("input")
        if record.get("url") != EMBEDDINGS_URL:
            invalid.append(
                (custom_id, f"line {number}: url must be {EMBEDDINGS_URL}, got {record.get('url')!r}")
            )
        elif not isinstance(text, str):
            invalid.append((custom_id, f"line {number}: body.input must be one string"))
        else:
            items.append((custom_id, text))
    return items, invalid


def success_line(custom_id: str, model: str, vector: list[float], tokens: int) -> bytes:
    """An OpenAI-format success line (for readers of the line format; the worker writes parts)."""
    body: dict[str, Any] = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": vector}],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return _line(custom_id, {"status_code": 200, "request_id": _request_id(), "body": body})


def error_line(custom_id: str, message: str, *, code: str) -> bytes:
    status = 400 if code == "invalid_request" else 500
    body = {"error": {"message": message, "type": code, "code": code}}
    return _line(custom_id, {"status_code": status, "request_id": _request_id(), "body": body})


def _line(custom_id: str, response: dict[str, Any]) -> bytes:
    record = {
        "id": f"batch_req_{uuid.uuid4().hex}",
        "custom_id": custom_id,
        "response": response,
        "error": None,
    }
    return (_encode(record) + "\n").encode()


def _request_id() -> str:
    return f"req_{uuid.uuid4().hex}"
