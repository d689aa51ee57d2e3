"""The realtime path against a rate-limited emulator: the shared limiter and the provider's headers keep
every request inside the limits, so the work finishes without a single 429."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine.models import BatchRequest
from batch_pipelines.providers.openai_realtime import OpenAIRealtimeProvider
from batch_pipelines.realtime import WorkQueue, process_realtime
from batch_pipelines_tests.realtime.conftest import MODEL, chat, sqlite_limiter

pytestmark = pytest.mark.anyio

# Per 2-second window (time compressed 30x): 30 requests and 2,000 tokens. Each request below is about
# 110 tokens as the emulator counts it (prompt + max_tokens), so tokens bind first at ~9 requests/s.
WINDOW_S = 2.0
RPM = 30
TPM = 2_000
LONG_TICKET = "My parcel never arrived and nobody answers the phone. " * 4


def limited_emulator(emulator: EmulatorProcess) -> None:
    emulator.configure({"rate_limits": {"rpm": RPM, "tpm": TPM, "window_s": WINDOW_S}})


def provider(emulator: EmulatorProcess, key: str) -> OpenAIRealtimeProvider:
    return OpenAIRealtimeProvider(MODEL, base_url=emulator.openai_base_url, api_key=key, max_connections=16)


def work(count: int) -> list[BatchRequest]:
    return [chat(f"t{index}", f"{LONG_TICKET} (ticket {index})", max_tokens=50) for index in range(count)]


async def test_the_shared_limiter_finishes_the_work_without_a_429(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    limited_emulator(emulator)
    limiter = sqlite_limiter(tmp_path / "limiter.db", RPM, TPM, period_seconds=WINDOW_S)
    client = provider(emulator, "sk-limited")
    summary = await process_realtime(
        work(40), provider_client=client, limiter=limiter, queue=WorkQueue(tmp_path / "q.db"), concurrency=16
    )
    await client.aclose()

    assert summary.answered == 40 and summary.queue.open == 0
    stats = emulator.stats()
    assert stats["rate_limited_429"] == 0 and summary.rate_limited == 0
    assert stats["requests_by_endpoint"]["chat.completions"] == 40


async def test_without_the_limiter_the_same_work_draws_429s_that_are_retried(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    limited_emulator(emulator)
    client = provider(emulator, "sk-unlimited")
    summary = await process_realtime(
        work(40),
        provider_client=client,
        limiter=None,
        queue=WorkQueue(tmp_path / "q.db"),
        concurrency=16,
        adaptive=False,
        max_call_attempts=10,
    )
    await client.aclose()

    assert summary.answered == 40
    assert summary.rate_limited > 0 and emulator.stats()["rate_limited_429"] == summary.rate_limited


async def test_the_providers_headers_pace_a_limiter_configured_too_high(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    limited_emulator(emulator)
    limiter = sqlite_limiter(tmp_path / "limiter.db", RPM * 20, TPM * 20, period_seconds=WINDOW_S)
    client = provider(emulator, "sk-adaptive")
    summary = await process_realtime(
        work(40), provider_client=client, limiter=limiter, queue=WorkQueue(tmp_path / "q.db"), concurrency=4
    )
    await client.aclose()

    assert summary.answered == 40
    assert emulator.stats()["rate_limited_429"] == 0
