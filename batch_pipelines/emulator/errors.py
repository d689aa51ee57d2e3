"""Provider error bodies: one exception type, rendered in OpenAI's or Anthropic's exact wire shape."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse

# OpenAI's `error.type` for a status when the caller does not choose one.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    429: "requests",
    500: "server_error",
    503: "server_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


@dataclass
class ApiError(Exception):
    """An error answer. ``kind`` overrides the provider's default type for the status."""

    status: int
    message: str
    param: str | None = None
    code: str | None = None
    kind: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.message}"

    def openai_body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind or _OPENAI_TYPES.get(self.status, "server_error"),
                "param": self.param,
                "code": self.code,
            }
        }

    def anthropic_error(self) -> dict[str, Any]:
        return {"type": self.kind or _ANTHROPIC_TYPES.get(self.status, "api_error"), "message": self.message}

    def anthropic_body(self) -> dict[str, Any]:
        return {"type": "error", "error": self.anthropic_error(), "request_id": new_request_id()}


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def openai_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.openai_body(), status_code=error.status, headers=error.headers)


def anthropic_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.anthropic_body(), status_code=error.status, headers=error.headers)


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def not_found(message: str, param: str | None = None) -> ApiError:
    return ApiError(404, message, param=param)
