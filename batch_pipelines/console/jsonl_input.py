"""Reading `batch-pipelines submit FILE.jsonl`: OpenAI batch-input lines or simple request lines.

OpenAI batch input: ``{"custom_id": …, "method": "POST", "url": "/v1/chat/completions", "body": {"model":
…, "messages": [...], "max_tokens": …}}`` (or ``/v1/embeddings`` with ``body.input``).
Simple: ``{"id": …, "messages": [...]}`` or ``{"id": …, "input": "text"}``, optionally with ``system``,
``max_tokens``, ``temperature`` and ``params``. Errors name the file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_pipelines.engine import BatchRequest
from batch_pipelines.wire.request_checks import message_problem

_REQUEST_FIELDS = ("system", "max_tokens", "temperature")
_BODY_SKIP = {"model", "messages", "input", "max_tokens", "max_completion_tokens", "temperature"}


class RequestFileError(ValueError):
    """A line of the input file that is not a usable request."""


@dataclass(frozen=True)
class RequestFile:
    requests: list[BatchRequest]
    model: str | None  # the model the OpenAI-style lines name, when they agree on one


def read_request_file(path: Path) -> RequestFile:
    if not path.is_file():
        raise RequestFileError(f"{path}: no such file")
    requests: list[BatchRequest] = []
    models: set[str] = set()
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise RequestFileError(
                    f"{where}: not UTF-8 text (byte 0x{raw[error.start]:02x} at column {error.start + 1}); "
                    "save the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                document = json.loads(line)
            except json.JSONDecodeError as error:
                raise RequestFileError(f"{where}: not JSON ({error.msg})") from None
            if not isinstance(document, dict):
                raise RequestFileError(f"{where}: expected a JSON object")
            try:
                request, model = _request_of(document)
            except (ValueError, TypeError) as error:
                raise RequestFileError(f"{where}: {error}") from None
            if model:
                models.add(model)
            requests.append(request)
    if not requests:
        raise RequestFileError(f"{path}: no requests in the file")
    return RequestFile(requests, models.pop() if len(models) == 1 else None)


def _request_of(document: dict[str, Any]) -> tuple[BatchRequest, str | None]:
    if "custom_id" in document:
        return _openai_line(document)
    if "id" not in document:
        raise ValueError("each line needs 'id' (simple form) or 'custom_id' (OpenAI batch input)")
    request_id = _id_text(document["id"], "id")
    extra = set(document) - {"id", "messages", "input", "params", *_REQUEST_FIELDS}
    if extra:
        raise ValueError(f"unknown field(s) {', '.join(sorted(extra))}")
    params = document.get("params") or {}
    if not isinstance(params, dict):
        raise ValueError("'params' must be an object")
    request = BatchRequest(
        id=request_id,
        messages=document.get("messages"),
        input=document.get("input"),
        params=params,
        **{name: document[name] for name in _REQUEST_FIELDS if name in document},
    )
    return _checked_messages(request), None


def _id_text(value: Any, field: str) -> str:
    """An id as text: a non-empty string, or an integer written as one."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"'{field}' must be a non-empty string, got {json.dumps(value)}")
    return value


def _checked_messages(request: BatchRequest) -> BatchRequest:
    if request.messages is not None and (problem := message_problem(request.messages)):
        raise ValueError(problem)
    return request


def _openai_line(document: dict[str, Any]) -> tuple[BatchRequest, str | None]:
    body = document.get("body")
    if not isinstance(body, dict):
        raise ValueError("'body' must be an object")
    url = str(document.get("url", "/v1/chat/completions"))
    custom_id = _id_text(document["custom_id"], "custom_id")
    model = body.get("model")
    if url.endswith("/embeddings"):
        text = body.get("input")
        if not isinstance(text, str):
            raise ValueError("an embeddings line needs 'body.input' text")
        return BatchRequest(id=custom_id, input=text), model
    if not url.endswith("/chat/completions"):
        raise ValueError(f"url {url!r}: only /v1/chat/completions and /v1/embeddings are supported")
    request = BatchRequest(
        id=custom_id,
        messages=body.get("messages"),
        max_tokens=body.get("max_tokens", body.get("max_completion_tokens")),
        temperature=body.get("temperature"),
        params={key: value for key, value in body.items() if key not in _BODY_SKIP},
    )
    return _checked_messages(request), model
