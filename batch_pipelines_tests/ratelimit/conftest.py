from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from batch_pipelines_tests.services import require_service

REDIS_URL_ENV = "BATCH_PIPELINES_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def redis_url() -> str:
    return require_service("Redis", REDIS_URL_ENV, DEFAULT_REDIS_URL)


@pytest.fixture
def unique_key() -> str:
    """A key no other test (or earlier run against the same Redis) has used."""
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.services)])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'limiter.db'}"
    else:
        yield request.getfixturevalue("redis_url")
