"""How many small realtime chat requests per second the emulator serves, against a bare-server baseline.

Both servers run the same way (one uvicorn process, uvloop + httptools): the emulator answering
``POST /v1/chat/completions`` with its full path (auth, rate-limit check, fault check, deterministic model,
JSON), the baseline a bare Starlette endpoint answering a small JSON object. The load comes from
separate processes speaking HTTP/1.1 with keep-alive over raw asyncio streams, so the client is never the
bottleneck (a plain ``httpx.AsyncClient`` only manages ~350 requests/s on this machine).

    python benchmarks/emulator_throughput.py [--seconds 5] [--clients 2] [--connections 32]

The last line reads ``emulator_rps=<n> baseline_rps=<n> ratio=<x>``; the target is emulator_rps >= 1500.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import subprocess
import sys
import time
from pathlib import Path

from batch_pipelines.emulator.process import EmulatorProcess

BODY = json.dumps(
    {
        "model": "gpt-4o-mini",
        "max_tokens": 32,
        "messages": [{"role": "user", "content": "Classify: late parcel"}],
    }
).encode()
BASELINE_READY = "Baseline listening on "


def serve_baseline() -> None:
    """A bare Starlette app with one JSON endpoint, served exactly like the emulator."""
    import socket

    import uvicorn
    import uvloop
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def hello(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"object": "hello", "ok": True})

    app = Starlette(routes=[Route("/v1/chat/completions", hello, methods=["POST"])])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(2048)
    config = uvicorn.Config(
        app, loop="uvloop", http="httptools", lifespan="off", access_log=False, log_level="warning"
    )
    server = uvicorn.Server(config)

    async def run() -> None:
        async def announce() -> None:
            while not server.started:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            print(f"{BASELINE_READY}http://127.0.0.1:{listener.getsockname()[1]}", flush=True)

        announcer = asyncio.create_task(announce())
        await server.serve(sockets=[listener])
        announcer.cancel()

    uvloop.run(run())


_CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


async def _connection(host: str, port: int, request: bytes, stop_at: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < stop_at:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            match = _CONTENT_LENGTH.search(head)
            await reader.readexactly(int(match.group(1)) if match else 0)
            counts[0 if head.startswith(b"HTTP/1.1 200") else 1] += 1
    finally:
        writer.close()


def _client(
    url: str, connections: int, seconds: float, results: multiprocessing.Queue[tuple[int, int]]
) -> None:
    import uvloop

    host, port = url.removeprefix("http://").split(":")
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer sk-bench\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY

    async def run() -> tuple[int, int]:
        counts = [0, 0]
        stop_at = time.monotonic() + seconds
        await asyncio.gather(
            *(_connection(host, int(port), request, stop_at, counts) for _ in range(connections))
        )
        return counts[0], counts[1]

    results.put(uvloop.run(run()))


def measure(url: str, clients: int, connections: int, seconds: float) -> float:
    """Successful requests per second: each client runs for ``seconds`` of its own clock, after a warm-up."""
    context = multiprocessing.get_context("spawn")
    rate = 0.0
    for duration in (0.5, seconds):
        results: multiprocessing.Queue[tuple[int, int]] = context.Queue()
        workers = [
            context.Process(target=_client, args=(url, connections, duration, results))
            for _ in range(clients)
        ]
        for worker in workers:
            worker.start()
        totals = [results.get(timeout=duration + 60) for _ in workers]
        for worker in workers:
            worker.join()
        failed = sum(t[1] for t in totals)
        if failed:
            raise RuntimeError(f"{url}: {failed} requests did not get a 200")
        rate = sum(t[0] for t in totals) / duration
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=2, help="load-generating processes")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections per client")
    parser.add_argument("--serve-baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline()
        return 0

    baseline = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve-baseline"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert baseline.stdout is not None
        baseline_url = baseline.stdout.readline().strip().removeprefix(BASELINE_READY)
        with EmulatorProcess(seed=1) as emulator:
            emulator_rps = measure(emulator.url, args.clients, args.connections, args.seconds)
            served = emulator.stats()["requests_by_endpoint"].get("chat.completions", 0)
        baseline_rps = measure(baseline_url, args.clients, args.connections, args.seconds)
    finally:
        baseline.terminate()
        baseline.wait(10)
    ratio = emulator_rps / baseline_rps
    print(f"emulator: {emulator_rps:,.0f} chat completions/s ({served:,} served in total, target >= 1,500/s)")
    print(f"baseline: {baseline_rps:,.0f} hello-JSON responses/s (bare Starlette + uvicorn, same settings)")
    print(f"load: {args.clients} client process(es) x {args.connections} keep-alive connections each")
    print(f"emulator_rps={emulator_rps:.0f} baseline_rps={baseline_rps:.0f} ratio={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
