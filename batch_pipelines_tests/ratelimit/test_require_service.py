"""The shared `require_service` helper that the Redis tests rely on: skip locally, fail under CI."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from batch_pipelines_tests.services import require_service


@pytest.fixture
def listening_url() -> Iterator[str]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"


@pytest.fixture
def closed_url() -> str:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def test_reachable_service_url_comes_from_the_env_var(
    listening_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SERVICE_URL", listening_url)
    assert require_service("Redis", "TEST_SERVICE_URL", "redis://127.0.0.1:1/0") == listening_url


def test_unreachable_service_skips_locally(closed_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("TEST_SERVICE_URL", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"Redis is not reachable.*TEST_SERVICE_URL"):
        require_service("Redis", "TEST_SERVICE_URL", closed_url)


def test_unreachable_service_fails_under_ci(closed_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("TEST_SERVICE_URL", raising=False)
    with pytest.raises(pytest.fail.Exception, match="Redis is not reachable"):
        require_service("Redis", "TEST_SERVICE_URL", closed_url)
