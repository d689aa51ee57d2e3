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


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "soon"},
        {"retry-after": "Fri, 99 Foo 2026 25:61:00 GMT"},
        {"retry-after": "nan"},
        {"retry-after": "inf"},
        {"retry-after": "-5"},
        {"retry-after-ms": "lots", "retry-after": "Mon,"},
        {"retry-after": "\x00"},
    ],
)
def test_a_malformed_retry_after_means_the_usual_backoff(headers: dict[str, str]) -> None:
    assert retry_after_seconds(headers) is None
    error = error_from_response("anthropic", _response(429, headers), b"")
    assert error.retryable and error.retry_after_s is None  # type: ignore[attr-defined]


def test_a_429_for_quota_is_permanent_even_when_the_server_says_retry() -> None:
    body = json.dumps(
        {
            "error": {
                "message": "You exceeded your current quota",
                "type": "insufficient_quota",
                "code": "insufficient_quota",
            }
        }
    ).encode()
    error = error_from_response(
        "openai", _response(429, {"x-should-retry": "true", "retry-after": "1"}), body
    )
    assert (error.error_type, error.retryable) == ("billing", False)
    assert "add credit" in str(error)
