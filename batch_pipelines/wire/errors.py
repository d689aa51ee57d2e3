"""Provider failures as the engine and the provider clients both see them, and their
transient-versus-permanent classification.

A failure is *transient* when sending the same request again may succeed (rate limits, server errors,
overload, timeouts, an expired or cancelled batch, the enqueued-token pool being full) and *permanent*
when it never will (invalid request, request too large, content policy, authentication, billing).
"""

from __future__ import annotations


class BatchEngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class ProviderError(BatchEngineError):
    """A provider call failed. The message is the provider's own; credentials never appear in it."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status_code: int | None = None,
        error_type: str = "unknown",
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status_code = status_code
        self.error_type = error_type
        self.retryable = retryable

    def __str__(self) -> str:
        status = f" HTTP {self.status_code}" if self.status_code is not None else ""
        return f"{self.provider}{status} ({self.error_type}): {self.args[0]}"


class BatchNotFoundError(ProviderError):
    """The provider answered that it does not know a batch (or its results file) we recorded: deleted, past
    its retention period, or the key now belongs to another account. The engine marks the batch lost."""

    @classmethod
    def from_error(cls, error: ProviderError) -> BatchNotFoundError:
        return cls(
            error.args[0], provider=error.provider, status_code=error.status_code, error_type="not_found"
        )


TRANSIENT_TYPES = frozenset(
    {
        "rate_limit",
        "server_error",
        "overloaded",
        "timeout",
        "batch_expired",
        "token_limit_exceeded",
        "cancelled",
        "batch_failed",
        "missing_result",
        "batch_lost",
        "connection",
    }
)

# Provider codes and types (OpenAI `code`/`type`, Anthropic `error.type`, result types) to our names.
_CODE_TYPES = {
    "rate_limit_exceeded": "rate_limit",
    "rate_limit_error": "rate_limit",
    "tokens": "rate_limit",
    "requests": "rate_limit",
    "server_error": "server_error",
    "api_error": "server_error",
    "internal_error": "server_error",
    "internal_server_error": "server_error",
    "service_unavailable": "server_error",
    "overloaded_error": "overloaded",
    "overloaded": "overloaded",
    "timeout": "timeout",
    "timeout_error": "timeout",
    "request_timeout": "timeout",
    "batch_expired": "batch_expired",
    "expired": "batch_expired",
    "token_limit_exceeded": "token_limit_exceeded",
    "canceled": "cancelled",
    "cancelled": "cancelled",
    "batch_cancelled": "cancelled",
    "invalid_request_error": "invalid_request",
    "invalid_request": "invalid_request",
    "invalid_value": "invalid_request",
    "invalid_json": "invalid_request",
    "invalid_json_line": "invalid_request",
    "invalid_url": "invalid_request",
    "missing_required_parameter": "invalid_request",
    "model_not_found": "invalid_request",
    "duplicate_custom_id": "invalid_request",
    "not_found_error": "not_found",
    "request_too_large": "request_too_large",
    "file_too_large": "request_too_large",
    "context_length_exceeded": "request_too_large",
    "content_filter": "content_policy",
    "content_policy_violation": "content_policy",
    "authentication_error": "authentication",
    "invalid_api_key": "authentication",
    "permission_error": "permission",
    "billing_error": "billing",
    "insufficient_quota": "billing",
}


def is_known_code(code: str) -> bool:
    """Whether ``classify`` names ``code`` itself (else it falls back on the HTTP status)."""
    return code.lower() in _CODE_TYPES


def classify(code: str | None, message: str = "", status_code: int | None = None) -> tuple[str, bool]:
    """Name a failure and say whether it is transient: ``(error_type, retryable)``.

    A 429 whose message says the request is too large is permanent: no wait makes it fit.
    """
    lowered = message.lower()
    if "request too large" in lowered or "too large for" in lowered:
        return "request_too_large", False
    error_type = _CODE_TYPES.get((code or "").lower())
    if error_type is None:
        error_type = _type_from_status(status_code)
    return error_type, error_type in TRANSIENT_TYPES


def _type_from_status(status_code: int | None) -> str:
    if status_code is None:
        return "unknown"
    if status_code == 429:
        return "rate_limit"
    if status_code in (408, 504):
        return "timeout"
    if status_code == 529:
        return "overloaded"
    if status_code >= 500:
        return "server_error"
    if status_code in (401,):
        return "authentication"
    if status_code == 403:
        return "permission"
    if status_code == 404:
        return "not_found"
    if status_code == 413:
        return "request_too_large"
    if status_code == 409:
        return "server_error"
    return "invalid_request"
