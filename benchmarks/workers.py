"""Realtime throughput with 1, 2 and 4 worker processes under one fixed provider rate limit.

The emulator allows ``--rpm`` requests per minute and takes ``--latency`` seconds per answer. Every
worker is the same unit (``process_realtime`` with ``--concurrency`` calls in flight, as one pod or one
Dagster worker run would be); all workers of a phase drain one shared work queue and draw on one shared
limiter (Redis when reachable, else SQLite). Each phase has its own API key, queue and limiter key.
``--queue sqs`` puts the work queue on SQS (moto's server, started here on 127.0.0.1) through
``SqsWorkQueue``, with its results ledger in a SQLite file, instead of the embedded SQLite ``WorkQueue``.

Items per minute are answers written after ``--warmup`` seconds until the phase ends. The baseline is
the 1-worker phase of the same run; the last line prints each phase's ratio to it and to the limit.

    .venv/bin/python benchmarks/workers.py [--seconds 20] [--rpm 1200] [--latency 0.5] [--concurrency 4]
        [--queue sqlite|sqs]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import boto3

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine.models import BatchRequest
from batch_pipelines.ratelimit import RateLimiter
from batch_pipelines.realtime import WorkQueue, make_realtime_provider, process_realtime
from batch_pipelines.realtime.sqs_queue import SqsWorkQueue

MODEL = "gpt-4o-mini"
TPM = 10_000_000  # requests are the binding limit
GO_DELAY_S = 0.5


@dataclass
class WorkerConfig:
    base_url: str
    api_key: str
    queue_path: str
    limiter_url: str
    limiter_key: str
    rpm: int
    concurrency: int
    seconds: float
    sqs_endpoint: str | None = None  # set: the queue is on SQS, results in the ledger at queue_path
    sqs_queue_url: str | None = None
    sqs_dead_letter_queue_url: str | None = None


def open_queue(config: WorkerConfig) -> WorkQueue | SqsWorkQueue:
    if config.sqs_queue_url is None:
        return WorkQueue(config.queue_path, name="bench", visibility_timeout_s=120)
    return SqsWorkQueue(
        config.sqs_queue_url,
        ledger_url=f"sqlite:///{config.queue_path}",
        dead_letter_queue_url=config.sqs_dead_letter_queue_url,
        client=boto3.client("sqs", endpoint_url=config.sqs_endpoint),
        visibility_timeout_s=120,
    )


async def worker(config: WorkerConfig) -> None:
    provider = make_realtime_provider(
        "openai", model=MODEL, base_url=config.base_url, api_key=config.api_key, max_connections=64
    )
    limiter = RateLimiter.from_url(
        config.limiter_url, requests_per_minute=config.rpm, tokens_per_minute=TPM, key=config.limiter_key
    )
    queue = open_queue(config)
    await queue.initialize()
    print("READY", flush=True)
    start_at = float(await anyio.to_thread.run_sync(sys.stdin.readline))
    await anyio.sleep(max(0.0, start_at - time.time()))
    with anyio.move_on_after(start_at + config.seconds - time.time()):
        await process_realtime(
            None,
            provider_client=provider,
            limiter=limiter,
            queue=queue,  # type: ignore[arg-type]  # SqsWorkQueue has WorkQueue's interface
            concurrency=config.concurrency,
        )
    await provider.aclose()


def run_phase(workers: int, base: WorkerConfig, items: int, warmup: float) -> float:
    """Items per minute that ``workers`` processes answered in the steady state."""
    shared_queue = open_queue(base)
    requests = [
        BatchRequest(
            id=f"i{n}", messages=[{"role": "user", "content": f"Classify ticket {n}"}], max_tokens=20
        )
        for n in range(items)
    ]

    async def fill() -> None:
        await shared_queue.initialize()
        await shared_queue.enqueue(requests)
        await shared_queue.close()

    anyio.run(fill)
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", json.dumps(asdict(base))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    for process in processes:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "READY":
            raise SystemExit("a worker failed to start")
    start_at = time.time() + GO_DELAY_S
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(f"{start_at}\n")
        process.stdin.close()
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(f"a worker failed with exit code {process.returncode}")
    window_start, window_end = start_at + warmup, start_at + base.seconds
    with sqlite3.connect(base.queue_path) as connection:
        answered = connection.execute(
            "SELECT count(*) FROM rt_results WHERE error IS NULL AND written_at BETWEEN ? AND ?",
            (window_start, window_end),
        ).fetchone()[0]
    return float(answered) / (window_end - window_start) * 60


@contextmanager
def sqs_server(wanted: bool) -> Iterator[str | None]:
    """moto's SQS server on a free loopback port (fake credentials for it), or None when not wanted."""
    if not wanted:
        yield None
        return
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ[name] = value  # inherited by the worker processes
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def redis_reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1):
            return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rpm", type=int, default=1200)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--queue", choices=("sqlite", "sqs"), default="sqlite", help="the work queue")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        anyio.run(worker, WorkerConfig(**json.loads(arguments.worker)))
        return

    figures: dict[int, float] = {}
    with (
        tempfile.TemporaryDirectory() as folder,
        EmulatorProcess(seed=3) as emulator,
        sqs_server(arguments.queue == "sqs") as sqs_endpoint,
    ):
        emulator.configure(
            {
                "rate_limits": {"rpm": arguments.rpm, "tpm": TPM},
                "faults": {"realtime_error_rates": {"slow": 1.0}, "slow_response_s": arguments.latency},
            }
        )
        backend = "redis" if redis_reachable(arguments.redis_url) else "sqlite"
        for workers in (1, 2, 4):
            phase = uuid.uuid4().hex[:8]
            limiter_url = (
                arguments.redis_url
                if backend == "redis"
                else f"sqlite:///{Path(folder) / f'{phase}.limiter'}"
            )
            base = WorkerConfig(
                base_url=emulator.openai_base_url,
                api_key=f"sk-{phase}",
                queue_path=str(Path(folder) / f"{phase}.queue.db"),
                limiter_url=limiter_url,
                limiter_key=f"openai:{MODEL}:{phase}",
                rpm=arguments.rpm,
                concurrency=arguments.concurrency,
                seconds=arguments.seconds,
            )
            if sqs_endpoint is not None:
                created = SqsWorkQueue.create(
                    boto3.client("sqs", endpoint_url=sqs_endpoint),
                    f"bench-{phase}",
                    ledger_url=f"sqlite:///{base.queue_path}",
                    visibility_timeout_s=120,
                )
                base.sqs_endpoint = sqs_endpoint
                base.sqs_queue_url = created.queue_url
                base.sqs_dead_letter_queue_url = created.dead_letter_queue_url
            # More items than the limit allows in the phase, so the queue never runs dry.
            items = int(arguments.rpm / 60 * arguments.seconds * 1.5) + 100
            before = int(emulator.stats()["rate_limited_429"])
            figures[workers] = run_phase(workers, base, items, arguments.warmup)
            rejected = int(emulator.stats()["rate_limited_429"]) - before
            print(f"workers={workers} items_per_minute={figures[workers]:.0f} 429s={rejected}", flush=True)
    print(
        f"{arguments.rpm} RPM limit, {arguments.latency}s per answer, "
        f"{arguments.concurrency} calls in flight per worker, {backend} limiter, {arguments.queue} queue"
    )
    print(
        " ".join(
            f"workers{n}={figures[n]:.0f}/min ratio{n}={figures[n] / figures[1]:.2f} "
            f"of_limit{n}={figures[n] / arguments.rpm:.2f}"
            for n in (1, 2, 4)
        )
    )


if __name__ == "__main__":
    main()
