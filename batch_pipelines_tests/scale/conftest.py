"""Fixtures for the scale-out tests: a fresh PostgreSQL database per test, the Redis URL, and moto's S3/SQS
server on a free loopback port.

Each test gets its own database (created and dropped here), so tests never see each other's rows and
can run against a shared server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from moto.server import ThreadedMotoServer

from batch_pipelines_tests.services import require_service

POSTGRES_URL_ENV = "BATCH_PIPELINES_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL_ENV = "BATCH_PIPELINES_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _with_driver(url: sa.URL) -> sa.URL:
    return url.set(drivername="postgresql+psycopg")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of an empty database of its own on the test PostgreSQL server (dropped afterwards)."""
    server_url = sa.make_url(require_service("PostgreSQL", POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL))
    name = f"bp_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(_with_driver(server_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield server_url.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


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
