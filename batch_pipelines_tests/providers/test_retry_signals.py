"""How response headers steer retries: x-should-retry overrides the status, retry-after sets the wait."""

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from batch_pipelines.providers.http import error_from_response, retry_after_seconds


def _response(status: int, headers: dict[str, str], body: bytes = b"") -> httpx.Response:
    return httpx.Response(
        status, headers=headers, content=body, request=httpx.Request("POST", "http://h/v1/x")
    )


def test_should_retry_header_overrides_the_status() -> None:
    assert not error_from_response("openai", _response(500, {"x-should-retry": "false"}), b"").retryable
    assert error_from_response("openai", _response(400, {"x-should-retry": "true"}), b"").retryable
    assert error_from_response("openai", _response(503, {}), b"").retryable
    assert not error_from_response("openai", _response(400, {}), b"").retryable


def test_request_too_large_429_is_permanent() -> None:
    message = "Request too large for gpt-4o-mini on tokens per min"
    body = json.dumps({"error": {"message": message, "code": "rate_limit_exceeded"}}).encode()
    error = error_from_response("openai", _response(429, {}), body)
    assert (error.error_type, error.retryable) == ("request_too_large", False)
    assert "Request too large" in str(error)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "2"}, 2.0),
        ({}, None),
    ],
)
def test_retry_after_headers(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(httpx.Headers(headers)) == seconds


def test_retry_after_as_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    waited = retry_after_seconds(httpx.Headers({"retry-after": when}))
    assert waited is not None and 25 < waited <= 30
