"""Result lines of a finished batch request, in each provider's output format."""

from __future__ import annotations

import json
import secrets
from typing import Any

from batch_pipelines.emulator.config import ModelSettings
from batch_pipelines.emulator.errors import ApiError, new_request_id
from batch_pipelines.emulator.faults import fault_error
from batch_pipelines.emulator.model import (
    anthropic_message,
    check_anthropic,
    check_embeddings,
    check_openai_chat,
    openai_chat_completion,
    openai_embeddings,
)
from batch_pipelines.emulator.prompt_cache import PromptCache
from batch_pipelines.emulator.store import BatchRequest

# Not an injected fault: the request is malformed and the model itself answers 400.
INVALID_BODY = "invalid_body"
EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."


def execute_openai(
    endpoint: str, body: dict[str, Any], settings: ModelSettings, cache: PromptCache | None = None
) -> dict[str, Any]:
    if endpoint == "/v1/embeddings":
        return openai_embeddings(body, settings.chars_per_token, settings.embedding_dimensions)
    return openai_chat_completion(body, settings.chars_per_token, settings.reply_tokens, cache)


def request_problem(
    provider: str, endpoint: str, body: dict[str, Any], settings: ModelSettings
) -> str | None:
    """``INVALID_BODY`` when the request will be answered with a 400 by the model, so counts stay honest."""
    try:
        if provider == "anthropic":
            check_anthropic(body)
        elif endpoint == "/v1/embeddings":
            check_embeddings(body, settings.embedding_dimensions)
        else:
            check_openai_chat(body)
    except ApiError:
        return INVALID_BODY
    return None


def openai_line(
    request: BatchRequest,
    endpoint: str,
    fault: str | None,
    settings: ModelSettings,
    cache: PromptCache | None = None,
) -> dict[str, Any]:
    """One output- or error-file line (a success, an HTTP error body, or a response-less error)."""
    line_id = "batch_req_" + secrets.token_hex(12)
    if fault == "no_response":
        error = {"code": "server_error", "message": "The server had an error processing this request."}
        return {"id": line_id, "custom_id": request.custom_id, "response": None, "error": error}
    try:
        if fault is not None and fault != INVALID_BODY:
            raise fault_error(fault, "openai", str(request.body.get("model", "the model")))
        status, body = 200, execute_openai(endpoint, request.body, settings, cache)
    except ApiError as failure:
        status, body = failure.status, failure.openai_body()
    response = {"status_code": status, "request_id": new_request_id(), "body": body}
    return {"id": line_id, "custom_id": request.custom_id, "response": response, "error": None}


def openai_expired_line(request: BatchRequest) -> dict[str, Any]:
    return {
        "id": "batch_req_" + secrets.token_hex(12),
        "custom_id": request.custom_id,
        "response": None,
        "error": {"code": "batch_expired", "message": EXPIRED_MESSAGE},
    }


def anthropic_line(
    request: BatchRequest, fault: str | None, settings: ModelSettings, cache: PromptCache | None = None
) -> dict[str, Any]:
    try:
        if fault is not None and fault != INVALID_BODY:
            raise fault_error("server_error" if fault == "no_response" else fault, "anthropic")
        message = anthropic_message(request.body, settings.chars_per_token, settings.reply_tokens, cache)
        result: dict[str, Any] = {"type": "succeeded", "message": message}
    except ApiError as failure:
        error = {"type": "error", "error": failure.anthropic_error(), "request_id": new_request_id()}
        result = {"type": "errored", "error": error}
    return {"custom_id": request.custom_id, "result": result}


def anthropic_unfinished_line(request: BatchRequest, result_type: str) -> dict[str, Any]:
    return {"custom_id": request.custom_id, "result": {"type": result_type}}


def dumps_lines(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode()
