"""Fixtures for the scale-out tests: the Redis URL, and moto's S3/SQS server on a free loopback port (the
fresh PostgreSQL database per test, `postgres_url`, is in the package's conftest)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer

from batch_pipelines_tests.services import require_service

REDIS_URL_ENV = "BATCH_PIPELINES_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_url() -> str:
    return require_service("Redis", REDIS_URL_ENV, DEFAULT_REDIS_URL)


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    """moto in server mode: a local S3/SQS endpoint our code talks to over HTTP like the real one."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region in the environment, as a deployment's role would provide them."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
