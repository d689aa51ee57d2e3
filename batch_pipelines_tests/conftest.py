"""Fixtures every test package shares: the anyio backend, a running provider emulator, and a fresh
PostgreSQL database.

Each test that asks for `postgres_url` gets its own database (created and dropped here), so tests never
see each other's rows and can run against a shared server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.services import require_service

# Simulated durations are multiplied by this: a small batch completes in well under a second.
TEST_TIME_SCALE = 0.02
POSTGRES_URL_ENV = "BATCH_PIPELINES_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def emulator() -> Iterator[EmulatorProcess]:
    """A fresh emulator process (own state, fast clock, seed 7); see docs/emulator.md for its admin API."""
    with EmulatorProcess(time_scale=TEST_TIME_SCALE, seed=7) as running:
        yield running


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of an empty database of its own on the test PostgreSQL server (dropped afterwards)."""
    server_url = sa.make_url(require_service("PostgreSQL", POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL))
    name = f"bp_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield server_url.set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
