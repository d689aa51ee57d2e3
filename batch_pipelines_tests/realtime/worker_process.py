"""A realtime worker as its own process, for the crash test: drains a queue file against the emulator.

python -m batch_pipelines_tests.realtime.worker_process BASE_URL QUEUE_DB LIMITER_DB VISIBILITY_S
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from batch_pipelines.providers.openai_realtime import OpenAIRealtimeProvider
from batch_pipelines.realtime import WorkQueue, process_realtime
from batch_pipelines_tests.realtime.conftest import MODEL, sqlite_limiter

CONCURRENCY = 4
RPM = 600


async def main(base_url: str, queue_path: str, limiter_path: str, visibility_s: str) -> None:
    provider = OpenAIRealtimeProvider(MODEL, base_url=base_url, api_key="sk-worker")
    queue = WorkQueue(queue_path, name="crash", visibility_timeout_s=float(visibility_s))
    limiter = sqlite_limiter(Path(limiter_path), rpm=RPM, tpm=1_000_000)
    await process_realtime(
        None, provider_client=provider, limiter=limiter, queue=queue, concurrency=CONCURRENCY
    )


if __name__ == "__main__":
    base_url, queue_path, limiter_path, visibility_s = sys.argv[1:5]
    anyio.run(main, base_url, queue_path, limiter_path, visibility_s)
