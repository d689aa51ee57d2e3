"""How many limiter acquisitions per second each backend sustains when the limit never binds.

The baseline is a bare `async def acquire(): ...` awaited in the same loop, measured in the same run, so
the ratio shows the limiter's own cost (the backend round trip, the thread hop for SQLite) rather than
the machine's speed. Last line: `memory_acq_s=<n> sqlite_acq_s=<n> redis_acq_s=<n>`.

    .venv/bin/python benchmarks/ratelimit_throughput.py [--seconds 2] [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis

from batch_pipelines.ratelimit import RateLimiter

UNLIMITED = {"requests_per_minute": 1e12, "tokens_per_minute": 1e15}


async def _rate(call: Callable[[], Awaitable[object]], seconds: float) -> float:
    """Calls per second of `call`, awaited back to back for about `seconds`."""
    calls = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(100):
            await call()
        calls += 100
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - started)


def _sync_rate(call: Callable[[], object], seconds: float) -> float:
    calls = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(100):
            call()
        calls += 100
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - started)


async def _no_op_acquire() -> None:
    return None


async def _measure(url: str, seconds: float) -> tuple[float, float]:
    limiter = RateLimiter.from_url(url, key=f"bench:{uuid.uuid4().hex}", **UNLIMITED)
    async_rate = await _rate(lambda: limiter.acquire(100), seconds)
    sync_rate = _sync_rate(lambda: limiter.acquire_sync(100), seconds)
    await limiter.close_async()
    return async_rate, sync_rate


def _redis_reachable(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        client.ping()
        client.close()
        return True
    except redis.RedisError:
        return False


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per backend and path")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BATCH_PIPELINES_REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="Redis to measure (default $BATCH_PIPELINES_REDIS_URL or redis://127.0.0.1:6379/0)",
    )
    arguments = parser.parse_args()

    baseline = await _rate(_no_op_acquire, arguments.seconds)
    print(f"baseline: bare async no-op acquire  {baseline:12,.0f} calls/s")
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        urls = {"memory": "memory://", "sqlite": f"sqlite:///{Path(folder) / 'bench.db'}"}
        if _redis_reachable(arguments.redis_url):
            urls["redis"] = arguments.redis_url
        else:
            print(f"redis: not reachable at {arguments.redis_url}; reported as 0")
        for name, url in urls.items():
            async_rate, sync_rate = await _measure(url, arguments.seconds)
            rates[name] = async_rate
            print(
                f"{name:7s} acquire {async_rate:10,.0f}/s (baseline/limiter = {baseline / async_rate:7,.1f}x)"
                f"   acquire_sync {sync_rate:10,.0f}/s"
            )
    print(" ".join(f"{name}_acq_s={rates.get(name, 0.0):.0f}" for name in ("memory", "sqlite", "redis")))


if __name__ == "__main__":
    asyncio.run(main())
