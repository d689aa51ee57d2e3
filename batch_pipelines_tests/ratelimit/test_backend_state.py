"""What the shared backends store: two numbers per key, untouched by refusals, and (Redis) gone when idle."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import anyio
import pytest
import redis

from batch_pipelines.ratelimit import RateLimiter, Reservation
from batch_pipelines.ratelimit.backends.redis import KEY_PREFIX

# 3 requests and 1,000 tokens per bucket, nothing refilling during the test.
FROZEN = {"period_seconds": 1e6, "burst_seconds": 1e5, "requests_per_minute": 30, "tokens_per_minute": 10_000}


def _sqlite_state(path: Path, key: str) -> list[tuple[float, float]]:
    with sqlite3.connect(path) as connection:
        return connection.execute(
            "SELECT request_tat, token_tat FROM rate_limiter_buckets WHERE key = ?", (key,)
        ).fetchall()


def test_sqlite_keeps_one_row_per_key_and_refusals_write_nothing(tmp_path: Path, unique_key: str) -> None:
    path = tmp_path / "limiter.db"
    limiter = RateLimiter.from_url(f"sqlite:///{path}", key=unique_key, **FROZEN)
    for _ in range(3):
        limiter.acquire_sync(10)
    before = _sqlite_state(path, unique_key)

    assert limiter.try_acquire_sync(500) is None  # out of requests: the tokens must stay untouched

    assert _sqlite_state(path, unique_key) == before
    assert len(before) == 1
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    limiter.close()


@pytest.mark.services
def test_redis_keeps_two_fields_per_key_and_refusals_write_nothing(redis_url: str, unique_key: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = RateLimiter.from_url(redis_url, key=unique_key, **FROZEN)
    for _ in range(3):
        limiter.acquire_sync(10)
    before = client.hgetall(KEY_PREFIX + unique_key)

    assert limiter.try_acquire_sync(500) is None

    assert client.hgetall(KEY_PREFIX + unique_key) == before
    assert set(before) == {b"request_tat", b"token_tat"}
    limiter.close()
    client.close()


@pytest.mark.services
def test_redis_state_stays_small_for_huge_token_limits_and_expires(redis_url: str, unique_key: str) -> None:
    client = redis.Redis.from_url(redis_url)
    limiter = RateLimiter.from_url(
        redis_url,
        key=unique_key,
        requests_per_minute=1_000,
        tokens_per_minute=10**12,
        period_seconds=1.0,
        burst_seconds=0.2,
    )
    reservation = limiter.acquire_sync(10**11)
    limiter.settle_sync(reservation, 10**9)

    assert client.hlen(KEY_PREFIX + unique_key) == 2
    assert 0 < client.pttl(KEY_PREFIX + unique_key) <= 2_000
    deadline = time.monotonic() + 10
    while client.exists(KEY_PREFIX + unique_key) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not client.exists(KEY_PREFIX + unique_key)
    limiter.close()
    client.close()


@pytest.mark.anyio
async def test_sqlite_lock_held_elsewhere_waits_off_the_event_loop(tmp_path: Path, unique_key: str) -> None:
    path = tmp_path / "limiter.db"
    limiter = RateLimiter.from_url(f"sqlite:///{path}", key=unique_key, **FROZEN)
    await limiter.acquire(10)  # creates the file and the table
    other_process = sqlite3.connect(path, isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")
    reservations: list[Reservation] = []
    loop_ticks = 0

    async def acquire() -> None:
        reservations.append(await limiter.acquire(10))

    async with anyio.create_task_group() as group:
        group.start_soon(acquire)
        with anyio.fail_after(10):
            while loop_ticks < 20:  # the event loop keeps running while the acquisition waits for the lock
                await anyio.sleep(0.01)
                loop_ticks += 1
        assert reservations == []
        other_process.execute("COMMIT")
    other_process.close()

    assert len(reservations) == 1
    await limiter.close_async()
