import pytest

from batch_pipelines.engine.errors import DuplicateRequestIdError, classify


@pytest.mark.parametrize(
    ("code", "message", "status", "expected"),
    [
        ("rate_limit_exceeded", "Rate limit reached for gpt-4o-mini", 429, ("rate_limit", True)),
        (
            "rate_limit_exceeded",
            "Request too large for gpt-4o-mini on tokens per min",
            429,
            ("request_too_large", False),
        ),
        ("overloaded_error", "Overloaded", 529, ("overloaded", True)),
        (
            "batch_expired",
            "could not be executed before the completion window expired",
            None,
            ("batch_expired", True),
        ),
        ("token_limit_exceeded", "Enqueued token limit reached", None, ("token_limit_exceeded", True)),
        ("invalid_request_error", "messages: field required", 400, ("invalid_request", False)),
        ("content_policy_violation", "flagged", 400, ("content_policy", False)),
        ("authentication_error", "invalid x-api-key", 401, ("authentication", False)),
        (None, "boom", 503, ("server_error", True)),
        ("api_error", "Internal server error", 500, ("server_error", True)),
        ("timeout_error", "timed out", None, ("timeout", True)),
        ("billing_error", "credit balance too low", 400, ("billing", False)),
    ],
)
def test_classification(
    code: str | None, message: str, status: int | None, expected: tuple[str, bool]
) -> None:
    assert classify(code, message, status) == expected


def test_duplicate_error_names_each_duplicate_once() -> None:
    error = DuplicateRequestIdError(["b", "a", "b"])
    assert error.duplicates == ["a", "b"]
    assert "'a'" in str(error) and "'b'" in str(error)
