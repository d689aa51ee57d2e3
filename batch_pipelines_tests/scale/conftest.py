"""Fixtures for the scale-out tests: a fresh PostgreSQL database per test, and the Redis URL.

Each test gets its own database (created and dropped here), so tests never see each other's rows and
can run against a shared server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

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
