"""Find an external service (PostgreSQL, Redis, RabbitMQ) for a test, or say clearly why the test cannot run.

Locally a missing service skips the test; under CI=true it fails it, so CI never passes by skipping.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

_DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "postgresql": 5432, "postgres": 5432, "amqp": 5672}
_CONNECT_TIMEOUT_SECONDS = 1.0


def _unreachable_reason(url: str) -> str | None:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    if port is None:
        return f"no port in {url!r} and no default port for scheme {parts.scheme!r}"
    try:
        with socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT_SECONDS):
            return None
    except OSError as error:
        return f"cannot connect to {host}:{port} ({error})"


def require_service(name: str, url_env: str, default_url: str) -> str:
    """The service's URL from ``url_env`` (else ``default_url``) if it accepts connections.

    Otherwise skip the test, or fail it when the CI environment variable is "true".
    """
    url = os.environ.get(url_env) or default_url
    reason = _unreachable_reason(url)
    if reason is None:
        return url
    message = f"{name} is not reachable: {reason}; start it or point {url_env} at one"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
