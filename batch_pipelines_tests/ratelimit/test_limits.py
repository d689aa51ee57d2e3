"""Behaviour every backend must share: both limits or neither, settling, too-large requests, no spinning."""

from __future__ import annotations

import subprocess
import sys

import anyio
import pytest

from batch_pipelines.ratelimit import RateLimiter, RequestTooLargeError

# A period so long that nothing measurably refills while a test runs; a bucket then holds a tenth of
# each limit: 3 requests and 1,000 tokens.
FROZEN = {"period_seconds": 1e6, "burst_seconds": 1e5, "requests_per_minute": 30, "tokens_per_minute": 10_000}


@pytest.mark.anyio
async def test_request_short_of_tokens_takes_no_request(backend_url: str, unique_key: str) -> None:
    limiter = RateLimiter.from_url(backend_url, key=unique_key, **FROZEN)
    assert await limiter.try_acquire(1_000) is not None

    assert await limiter.try_acquire(500) is None
    assert await limiter.try_acquire(500) is None

    # The two refused attempts left the request budget whole: two of the three requests remain.
    assert await limiter.try_acquire(0) is not None
    assert await limiter.try_acquire(0) is not None
    assert await limiter.try_acquire(0) is None
    await limiter.close_async()


@pytest.mark.anyio
async def test_admitted_request_takes_both_limits(backend_url: str, unique_key: str) -> None:
    limiter = RateLimiter.from_url(backend_url, key=unique_key, **FROZEN)
    for _ in range(3):
        assert await limiter.try_acquire(100) is not None

    # 700 tokens remain, but all three requests are taken.
    assert await limiter.try_acquire(1) is None
    await limiter.close_async()


@pytest.mark.anyio
async def test_settle_gives_back_and_takes_more(backend_url: str, unique_key: str) -> None:
    limiter = RateLimiter.from_url(backend_url, key=unique_key, **FROZEN)
    estimated = await limiter.acquire(1_000)
    assert await limiter.try_acquire(400) is None

    await limiter.settle(estimated, 600)
    assert await limiter.try_acquire(400) is not None
    assert await limiter.try_acquire(1) is None
    await limiter.close_async()


def test_settle_taking_more_blocks_later_requests(backend_url: str, unique_key: str) -> None:
    limiter = RateLimiter.from_url(backend_url, key=unique_key, **FROZEN)
    underestimated = limiter.acquire_sync(500)
    limiter.settle_sync(underestimated, 900)
    limiter.settle_sync(underestimated, 900)  # settling again to the same figure changes nothing

    assert limiter.try_acquire_sync(200) is None
    assert limiter.try_acquire_sync(100) is not None
    limiter.close()


@pytest.mark.anyio
async def test_request_larger_than_the_token_limit_fails_at_once(backend_url: str, unique_key: str) -> None:
    limiter = RateLimiter.from_url(backend_url, key=unique_key, **FROZEN)

    with pytest.raises(RequestTooLargeError, match=r"10001 tokens.*limit is 10000 per") as raised:
        await limiter.acquire(10_001)
    assert raised.value.tokens == 10_001
    with pytest.raises(RequestTooLargeError):
        limiter.acquire_sync(10_001)
    assert limiter.decisions == 0

    # The whole limit in one request is bigger than the bucket, yet fits once the bucket is full.
    assert await limiter.try_acquire(10_000) is not None
    await limiter.close_async()


@pytest.mark.anyio
async def test_waiting_sleeps_until_the_bucket_allows(backend_url: str, unique_key: str) -> None:
    limiter = RateLimiter.from_url(
        backend_url,
        key=unique_key,
        requests_per_minute=40,
        tokens_per_minute=1_000_000,
        period_seconds=1.0,
        burst_seconds=0.025,
    )
    acquisitions = 10
    admitted_at = [(await limiter.acquire(10)).admitted_at for _ in range(acquisitions)]

    # One refusal then one admission per wait: a spinning limiter would ask hundreds of times.
    assert limiter.decisions <= 2 * acquisitions + 2
    # And the waits were real: after the one-request burst, admissions are 1/40 s apart on the backend clock.
    assert admitted_at[-1] - admitted_at[0] >= (acquisitions - 1) * 0.025 - 0.002
    await limiter.close_async()


@pytest.mark.anyio
async def test_concurrent_waiters_in_one_process_queue_instead_of_racing(
    backend_url: str, unique_key: str
) -> None:
    limiter = RateLimiter.from_url(
        backend_url,
        key=unique_key,
        requests_per_minute=40,
        tokens_per_minute=1_000_000,
        period_seconds=1.0,
        burst_seconds=0.025,
    )
    waiters = 10
    admitted_at: list[float] = []

    async def acquire_one() -> None:
        admitted_at.append((await limiter.acquire(10)).admitted_at)

    async with anyio.create_task_group() as group:
        for _ in range(waiters):
            group.start_soon(acquire_one)

    assert len(admitted_at) == waiters
    assert limiter.decisions <= 2 * waiters + 2
    assert max(admitted_at) - min(admitted_at) >= (waiters - 1) * 0.025 - 0.002
    await limiter.close_async()


def test_bad_limits_and_urls_are_named() -> None:
    with pytest.raises(ValueError, match="'tokens_per_minute' must be a positive number, got 0"):
        RateLimiter.from_url("memory://", requests_per_minute=10, tokens_per_minute=0)
    with pytest.raises(ValueError, match="unknown scheme 'postgres'"):
        RateLimiter.from_url("postgres://x/y", requests_per_minute=10, tokens_per_minute=10)
    with pytest.raises(ValueError, match="tokens must be zero or more"):
        RateLimiter.from_url("memory://", requests_per_minute=10, tokens_per_minute=10).acquire_sync(-1)


def test_the_limiter_never_imports_dagster() -> None:
    probe = "import sys, batch_pipelines.ratelimit; print('dagster' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "False"
