"""The realtime path where no limit binds (a self-hosted vLLM/TGI server): ours against a bare client.

One emulator with no rate limits and no added latency serves every phase. Each phase runs in a fresh
process and is timed from its first request to its last answer (imports and queue set-up excluded);
CPU is the worker processes' own (all threads), the emulator's is not counted.

- ``ours x1``: ``process_realtime`` over a durable SQLite work queue, one process, ``--concurrency`` tasks,
  no shared limiter (nothing to share on an unlimited server).
- ``ours x2``: two such processes draining one SQLite queue.
- ``bare``: a bare aiohttp client, 64 requests in flight, one session, honouring ``retry-after-ms``: the
  ceiling for one Python process on this machine.

Phases are interleaved over ``--rounds`` rounds and the median of each is printed.

    .venv/bin/python benchmarks/realtime_ceiling.py [--items 5000] [--rounds 3]

Last line: ``ratio=<ours x1 items/s / bare items/s> cpu_ratio=<ours x1 CPU per item / bare CPU per item>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

MODEL = "gpt-4o-mini"
BARE_IN_FLIGHT = 64
API_KEY = "sk-ceiling"


@dataclass
class Phase:
    kind: str  # "ours" or "bare"
    base_url: str
    items: int
    concurrency: int
    queue_path: str = ""


@dataclass
class Measured:
    answered: int
    seconds: float
    cpu_s: float


def prompt(index: int) -> str:
    return f"Classify support ticket #{index}: my parcel arrived late and the box was damaged."


# -- phase processes ------------------------------------------------------------------------------------


async def run_ours(phase: Phase) -> Measured:
    from batch_pipelines.realtime import WorkQueue, make_realtime_provider, process_realtime

    provider = make_realtime_provider(
        "openai", model=MODEL, base_url=phase.base_url, api_key=API_KEY, max_connections=phase.concurrency
    )
    queue = WorkQueue(phase.queue_path, name="ceiling", visibility_timeout_s=300)
    await queue.initialize()
    await ready_then_start()
    started, cpu_started = time.perf_counter(), time.process_time()
    summary = await process_realtime(
        None, provider_client=provider, limiter=None, queue=queue, concurrency=phase.concurrency
    )
    measured = Measured(summary.answered, time.perf_counter() - started, time.process_time() - cpu_started)
    await provider.aclose()
    await queue.close()
    return measured


async def run_bare(phase: Phase) -> Measured:
    import aiohttp

    url = f"{phase.base_url}/chat/completions"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    pending = iter(range(phase.items))
    answered = 0

    async def drain(session: aiohttp.ClientSession) -> None:
        nonlocal answered
        for index in pending:
            messages = [{"role": "user", "content": prompt(index)}]
            body = {"model": MODEL, "messages": messages, "max_tokens": 16}
            while True:
                async with session.post(url, json=body, headers=headers) as response:
                    payload = await response.read()
                    if response.status == 429 or response.status >= 500:
                        wait_ms = float(response.headers.get("retry-after-ms") or 500)
                        await asyncio.sleep(wait_ms / 1000)
                        continue
                    if response.status == 200 and json.loads(payload)["choices"]:
                        answered += 1
                    break

    connector = aiohttp.TCPConnector(limit=BARE_IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector) as session:
        await ready_then_start()
        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(drain(session) for _ in range(BARE_IN_FLIGHT)))
        return Measured(answered, time.perf_counter() - started, time.process_time() - cpu_started)


async def ready_then_start() -> None:
    """Tell the parent this process is set up, then wait for its go (so all processes start together)."""
    print("READY", flush=True)
    await asyncio.to_thread(sys.stdin.readline)


def worker_main(phase: Phase) -> None:
    runner = run_ours if phase.kind == "ours" else run_bare
    measured = asyncio.run(runner(phase))
    print(json.dumps(asdict(measured)), flush=True)


# -- the parent -----------------------------------------------------------------------------------------


def run_processes(phases: list[Phase]) -> list[Measured]:
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "--phase", json.dumps(asdict(phase))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for phase in phases
    ]
    for process in processes:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "READY":
            raise SystemExit("a benchmark process failed to start")
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.close()
    results = []
    for process in processes:
        assert process.stdout is not None
        output = process.stdout.read()
        if process.wait() != 0:
            raise SystemExit(f"a benchmark process failed with exit code {process.returncode}")
        results.append(Measured(**json.loads(output.strip().splitlines()[-1])))
    return results


def ours(base_url: str, items: int, concurrency: int, processes: int, folder: Path) -> Measured:
    queue_path = str(folder / f"queue-{time.monotonic_ns()}.db")
    asyncio.run(_fill(queue_path, items))  # filled first: the phase times draining, not enqueueing
    phases = [Phase("ours", base_url, items, concurrency, queue_path)] * processes
    measured = run_processes(phases)
    return Measured(
        sum(m.answered for m in measured), max(m.seconds for m in measured), sum(m.cpu_s for m in measured)
    )


async def _fill(queue_path: str, items: int) -> None:
    from batch_pipelines.engine.models import BatchRequest
    from batch_pipelines.realtime import WorkQueue

    queue = WorkQueue(queue_path, name="ceiling", visibility_timeout_s=300)
    await queue.initialize()
    await queue.enqueue(
        BatchRequest(f"item-{index}", messages=[{"role": "user", "content": prompt(index)}], max_tokens=16)
        for index in range(items)
    )
    await queue.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64, help="ours: tasks per process")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        worker_main(Phase(**json.loads(args.phase)))
        return

    from batch_pipelines.emulator.process import EmulatorProcess

    rows: dict[str, list[Measured]] = {"bare": [], "ours x1": [], "ours x2": []}
    with tempfile.TemporaryDirectory() as folder, EmulatorProcess(seed=7) as emulator:
        base_url = emulator.openai_base_url
        for round_number in range(1, args.rounds + 1):
            rows["bare"].append(run_processes([Phase("bare", base_url, args.items, BARE_IN_FLIGHT)])[0])
            rows["ours x1"].append(ours(base_url, args.items, args.concurrency, 1, Path(folder)))
            rows["ours x2"].append(ours(base_url, args.items, args.concurrency, 2, Path(folder)))
            print(f"round {round_number}: " + ", ".join(_line(name, runs[-1]) for name, runs in rows.items()))

    print(f"\n{args.items} requests, emulator without limits or latency, median of {args.rounds} rounds")
    print(f"{'client':<10} {'items/s':>9} {'CPU s per 1k':>13} {'answered':>9}")
    medians = {}
    for name, runs in rows.items():
        rate = statistics.median(m.answered / m.seconds for m in runs)
        cpu = statistics.median(m.cpu_s / max(m.answered, 1) * 1000 for m in runs)
        medians[name] = (rate, cpu)
        print(f"{name:<10} {rate:>9.0f} {cpu:>13.3f} {min(m.answered for m in runs):>9}")
    ratio = medians["ours x1"][0] / medians["bare"][0]
    cpu_ratio = medians["ours x1"][1] / medians["bare"][1]
    print(f"ratio={ratio:.3f} cpu_ratio={cpu_ratio:.2f}")


def _line(name: str, measured: Measured) -> str:
    return f"{name} {measured.answered / measured.seconds:.0f}/s"


if __name__ == "__main__":
    main()
