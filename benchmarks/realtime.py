"""Realtime goodput under a shared rate limit, against a plain asyncio+httpx script, in the same run.

The emulator is set to 600 RPM and 200,000 TPM with every answer taking ``--latency`` seconds. Four
worker processes drain one SQLite work queue through ``process_realtime``, sharing the SQLite limiter,
then the Redis limiter; the baseline is four processes of the usual script: a per-process semaphore,
``httpx.AsyncClient``, and on a 429 a sleep (retry-after when given, else 2^n) and another try.

Goodput is successful requests per minute in the steady state, as a fraction of the 600 RPM limit:
answers completed after ``--warmup`` seconds (process start-up), and for the baseline also after its
first 429, since it spends the provider's whole initial minute at once. Every phase uses its own API
key, so each starts with a full provider budget. 429s are the emulator's own count over the whole
phase. CPU per 1k items is the worker processes' own CPU over the phase (all threads) per answered
item; the ``sqlite x1`` phase is one worker process alone at 2,500 RPM (its key's own limit). Also
printed: the HTTP client speed (httpx's pool against aiohttp, no limits) and limiter acquisitions per
second per backend.

    .venv/bin/python benchmarks/realtime.py [--seconds 45] [--redis-url redis://127.0.0.1:6379/0]

Last line: ``goodput=<f> rate_limited=<n> baseline_goodput=<f> baseline_rate_limited=<n> cpu_per_1k=<s>``
(goodput and rate_limited are the four-process SQLite-limiter phase, cpu_per_1k the one-process phase;
the Redis phase is printed above it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import anyio
import httpx
from ratelimit_throughput import _measure as limiter_acquisitions_per_second
from ratelimit_throughput import _redis_reachable

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine.models import BatchRequest
from batch_pipelines.providers.realtime_http import TransportKind
from batch_pipelines.ratelimit import RateLimiter
from batch_pipelines.realtime import (
    WorkQueue,
    make_realtime_provider,
    process_realtime,
    suggested_concurrency,
)

RPM = 600
TPM = 200_000
# The one-process phase: issue 19's setting (5,000 calls at 2,500 RPM measured 5.1-5.6 s CPU per 1k).
ONE_PROCESS_RPM = 2_500
ONE_PROCESS_TPM = 2_000_000
WORKERS = 4
MODEL = "gpt-4o-mini"
MAX_TOKENS = 100
# ~600 characters: about 150 prompt tokens, so a call counts ~250 tokens and 600 RPM uses ~75% of TPM.
PROMPT = "Classify this support ticket into billing, shipping or other, and say why in one sentence. " * 7
BASELINE_CONCURRENCY = 16
GO_DELAY_S = 0.5  # after every worker said it is ready, all start at the same moment


@dataclass
class WorkerConfig:
    kind: str  # "realtime" or "baseline"
    base_url: str
    api_key: str
    seconds: float
    concurrency: int
    queue_path: str = ""
    limiter_url: str = ""
    limiter_key: str = ""
    first_item: int = 0
    items: int = 0
    done_path: str = ""
    rpm: int = RPM
    tpm: int = TPM


def request_for(index: int) -> BatchRequest:
    return BatchRequest(
        id=f"item-{index}",
        messages=[{"role": "user", "content": f"{PROMPT} Ticket #{index}"}],
        max_tokens=MAX_TOKENS,
    )


# -- worker processes ---------------------------------------------------------------------------------


async def realtime_worker(config: WorkerConfig) -> None:
    provider = make_realtime_provider(
        "openai",
        model=MODEL,
        base_url=config.base_url,
        api_key=config.api_key,
        max_connections=config.concurrency,
    )
    limiter = RateLimiter.from_url(
        config.limiter_url,
        requests_per_minute=config.rpm,
        tokens_per_minute=config.tpm,
        key=config.limiter_key,
    )
    queue = WorkQueue(config.queue_path, name="bench", visibility_timeout_s=120)
    await queue.initialize()
    start_at = await ready_then_start()
    cpu_started = time.process_time()
    with anyio.move_on_after(start_at + config.seconds - time.time()):
        await process_realtime(
            None, provider_client=provider, limiter=limiter, queue=queue, concurrency=config.concurrency
        )
    report_cpu(time.process_time() - cpu_started)
    await provider.aclose()


def report_cpu(seconds: float) -> None:
    """The worker's CPU over its phase (all threads), read by ``run_workers``."""
    print(f"CPU {seconds:.4f}", flush=True)


async def baseline_worker(config: WorkerConfig) -> None:
    """The script most people write: a semaphore, a client, and a retry loop around 429s."""
    semaphore = asyncio.Semaphore(config.concurrency)
    finished: list[float] = []
    rate_limited_at: list[float] = []
    async with httpx.AsyncClient(
        base_url=config.base_url,
        headers={"Authorization": f"Bearer {config.api_key}"},
        timeout=60,
        limits=httpx.Limits(max_connections=config.concurrency),
    ) as client:

        async def one(index: int) -> None:
            request = request_for(index)
            body = {"model": MODEL, "messages": request.messages, "max_tokens": MAX_TOKENS}
            async with semaphore:
                for attempt in range(6):
                    response = await client.post("/chat/completions", json=body)
                    if response.status_code == 429:
                        rate_limited_at.append(time.time())
                        wait = float(response.headers.get("retry-after") or 2**attempt)
                        await asyncio.sleep(wait + random.random() * 0.1)
                        continue
                    if response.status_code == 200:
                        finished.append(time.time())
                    return

        start_at = await ready_then_start()
        cpu_started = time.process_time()
        indexes = range(config.first_item, config.first_item + config.items)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(one(index) for index in indexes)),
                timeout=start_at + config.seconds - time.time(),
            )
        report_cpu(time.process_time() - cpu_started)
    first_429 = min(rate_limited_at, default=None)
    await anyio.Path(config.done_path).write_text(json.dumps({"finished": finished, "first_429": first_429}))


async def ready_then_start() -> float:
    """Tell the parent this worker is set up, then wait for the common start time and for it to come."""
    print("READY", flush=True)
    line = await anyio.to_thread.run_sync(sys.stdin.readline)
    start_at = float(line)
    await anyio.sleep(max(0.0, start_at - time.time()))
    return start_at


def run_workers(configs: list[WorkerConfig]) -> tuple[float, float]:
    """Run the workers, started together once all are set up (imports alone take seconds on a loaded
    machine); returns the common start time and the CPU seconds they used over the phase."""
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", json.dumps(asdict(config))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for config in configs
    ]
    for process in processes:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "READY":
            raise SystemExit("a benchmark worker failed to start")
    start_at = time.time() + GO_DELAY_S
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(f"{start_at}\n")
        process.stdin.close()
    cpu = 0.0
    for process in processes:
        assert process.stdout is not None
        output = process.stdout.read()
        if process.wait() != 0:
            raise SystemExit(f"a benchmark worker failed with exit code {process.returncode}")
        cpu += sum(float(line.split()[1]) for line in output.splitlines() if line.startswith("CPU "))
    return start_at, cpu


# -- phases ---------------------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    goodput: float
    rate_limited: int
    answered: int
    cpu_s: float

    @property
    def cpu_per_1k(self) -> float:
        return self.cpu_s / max(self.answered, 1) * 1000


def emulator_429s(emulator: EmulatorProcess) -> int:
    return int(emulator.stats()["rate_limited_429"])


def steady_goodput(
    finish_times: list[float], window_start: float, window_end: float, rpm: int = RPM
) -> float:
    in_window = sum(1 for moment in finish_times if window_start <= moment <= window_end)
    return in_window / ((window_end - window_start) * rpm / 60)


def realtime_phase(
    name: str,
    emulator: EmulatorProcess,
    limiter_url: str,
    folder: Path,
    seconds: float,
    warmup: float,
    latency: float,
    workers: int = WORKERS,
    rpm: int = RPM,
    tpm: int = TPM,
) -> PhaseResult:
    queue_path = folder / f"{name}-queue.db"
    items = int(rpm / 60 * seconds * 1.3) + 100

    async def fill() -> None:
        queue = WorkQueue(queue_path, name="bench")
        await queue.initialize()
        await queue.enqueue(request_for(index) for index in range(items))
        await queue.close()

    anyio.run(fill)
    before = emulator_429s(emulator)
    per_worker = max(4, -(-suggested_concurrency(rpm, latency, headroom=3.0) // workers))
    key = f"bench:{name}:{uuid.uuid4().hex[:8]}"
    api_key = f"sk-{name.replace(' ', '-')}-{uuid.uuid4().hex[:8]}"
    if (rpm, tpm) != (RPM, TPM):  # this phase's key gets its own limits at the emulator
        emulator.configure({"rate_limits": {"per_key": {api_key: {"rpm": rpm, "tpm": tpm}}}})
    start_at, cpu = run_workers(
        [
            WorkerConfig(
                "realtime",
                emulator.openai_base_url,
                api_key,
                seconds,
                per_worker,
                queue_path=str(queue_path),
                limiter_url=limiter_url,
                limiter_key=key,
                rpm=rpm,
                tpm=tpm,
            )
            for _ in range(workers)
        ]
    )
    with sqlite3.connect(queue_path) as connection:
        finished = [
            moment
            for (moment,) in connection.execute("SELECT written_at FROM rt_results WHERE error IS NULL")
        ]
    return PhaseResult(
        name,
        steady_goodput(finished, start_at + warmup, start_at + seconds, rpm),
        emulator_429s(emulator) - before,
        len(finished),
        cpu,
    )


def baseline_phase(emulator: EmulatorProcess, folder: Path, seconds: float, warmup: float) -> PhaseResult:
    before = emulator_429s(emulator)
    share = int(RPM / 60 * seconds * 3 / WORKERS) + 100
    api_key = f"sk-baseline-{uuid.uuid4().hex[:8]}"
    configs = [
        WorkerConfig(
            "baseline",
            emulator.openai_base_url,
            api_key,
            seconds,
            BASELINE_CONCURRENCY,
            first_item=worker * share,
            items=share,
            done_path=str(folder / f"baseline-{worker}.json"),
        )
        for worker in range(WORKERS)
    ]
    start_at, cpu = run_workers(configs)
    reports = [json.loads(Path(config.done_path).read_text()) for config in configs]
    finished = [moment for report in reports for moment in report["finished"]]
    # The script spends the provider's full initial minute at once; measure once that is gone.
    drained = min((report["first_429"] for report in reports if report["first_429"]), default=start_at)
    window_start = min(max(start_at + warmup, drained + 1.0), start_at + seconds - 1.0)
    print(f"baseline: measured from {window_start - start_at:.1f}s in (its first 429: the bucket was empty)")
    return PhaseResult(
        "baseline",
        steady_goodput(finished, window_start, start_at + seconds),
        emulator_429s(emulator) - before,
        len(finished),
        cpu,
    )


async def client_calls_per_second(
    base_url: str, transport: TransportKind, calls: int, concurrency: int
) -> float:
    provider = make_realtime_provider(
        "openai",
        model=MODEL,
        base_url=base_url,
        api_key="sk-client-speed",
        max_connections=concurrency,
        transport=transport,
    )
    pending = iter(range(calls))

    async def drain() -> None:
        for index in pending:
            await provider.call(
                BatchRequest(f"c{index}", messages=[{"role": "user", "content": "hi"}], max_tokens=5), None
            )

    started = time.perf_counter()
    async with anyio.create_task_group() as tasks:
        for _ in range(concurrency):
            tasks.start_soon(drain)
    elapsed = time.perf_counter() - started
    await provider.aclose()
    return calls / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45.0, help="length of each goodput phase")
    parser.add_argument(
        "--warmup", type=float, default=None, help="left out of goodput (default: seconds/4, ≤ 10)"
    )
    parser.add_argument("--latency", type=float, default=0.5, help="seconds the emulator takes per answer")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--client-calls", type=int, default=2000, help="calls per HTTP client speed measurement"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        config = WorkerConfig(**json.loads(arguments.worker))
        anyio.run(realtime_worker if config.kind == "realtime" else baseline_worker, config)
        return
    seconds = arguments.seconds
    warmup = arguments.warmup if arguments.warmup is not None else min(10.0, seconds / 4)

    print("limiter acquisitions/s (never binding):")
    with tempfile.TemporaryDirectory() as folder:
        urls = {"memory": "memory://", "sqlite": f"sqlite:///{Path(folder) / 'acq.db'}"}
        if _redis_reachable(arguments.redis_url):
            urls["redis"] = arguments.redis_url
        for name, url in urls.items():
            async_rate, _ = anyio.run(limiter_acquisitions_per_second, url, 1.0)
            print(f"  {name:7s} {async_rate:10,.0f}/s")

    with tempfile.TemporaryDirectory() as folder, EmulatorProcess(seed=3) as emulator:
        print(f"HTTP client, {arguments.client_calls} chat calls at concurrency 64, no limits:")
        speeds: dict[str, float] = {}
        for transport in ("httpx", "aiohttp"):
            speeds[transport] = anyio.run(
                client_calls_per_second, emulator.openai_base_url, transport, arguments.client_calls, 64
            )
            print(f"  {transport:7s} {speeds[transport]:8,.0f} calls/s")
        print(f"  aiohttp/httpx = {speeds['aiohttp'] / speeds['httpx']:.1f}x")

        emulator.configure(
            {
                "rate_limits": {"rpm": RPM, "tpm": TPM, "window_s": 60},
                "faults": {"realtime_error_rates": {"slow": 1.0}, "slow_response_s": arguments.latency},
            }
        )
        phases = [
            realtime_phase(
                "sqlite",
                emulator,
                f"sqlite:///{Path(folder) / 'limiter.db'}",
                Path(folder),
                seconds,
                warmup,
                arguments.latency,
            ),
            realtime_phase(
                "sqlite x1",
                emulator,
                f"sqlite:///{Path(folder) / 'limiter-1.db'}",
                Path(folder),
                seconds,
                warmup,
                arguments.latency,
                workers=1,
                rpm=ONE_PROCESS_RPM,
                tpm=ONE_PROCESS_TPM,
            ),
        ]
        if _redis_reachable(arguments.redis_url):
            phases.append(
                realtime_phase(
                    "redis", emulator, arguments.redis_url, Path(folder), seconds, warmup, arguments.latency
                )
            )
        else:
            print(f"redis: not reachable at {arguments.redis_url}; phase skipped")
        baseline = baseline_phase(emulator, Path(folder), seconds, warmup)
        print(
            f"goodput over {seconds - warmup:.0f}s after a {warmup:.0f}s warm-up, {WORKERS} processes, "
            f"{RPM} RPM / {TPM:,} TPM, {arguments.latency}s latency "
            f"(sqlite x1: one process at {ONE_PROCESS_RPM:,} RPM):"
        )
        for phase in [*phases, baseline]:
            print(
                f"  {phase.name:9s} goodput {phase.goodput:5.3f} of the limit   "
                f"429s {phase.rate_limited:6d}   answered {phase.answered:5d}   "
                f"CPU {phase.cpu_per_1k:5.2f} s per 1k items"
            )
    sqlite_phase, one_process = phases[0], phases[1]
    print(
        f"goodput={sqlite_phase.goodput:.3f} rate_limited={sqlite_phase.rate_limited} "
        f"baseline_goodput={baseline.goodput:.3f} baseline_rate_limited={baseline.rate_limited} "
        f"cpu_per_1k={one_process.cpu_per_1k:.2f}"
    )


if __name__ == "__main__":
    main()
