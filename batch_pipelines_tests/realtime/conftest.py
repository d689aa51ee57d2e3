"""Fixtures for realtime tests: a work queue file, a realtime client on the emulator, request builders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine.models import BatchRequest
from batch_pipelines.providers.openai_realtime import OpenAIRealtimeProvider
from batch_pipelines.ratelimit import RateLimiter
from batch_pipelines.realtime import WorkQueue, make_realtime_provider

MODEL = "gpt-4o-mini"


@pytest.fixture
def queue(tmp_path: Path) -> WorkQueue:
    return WorkQueue(tmp_path / "work.db", name="test")


@pytest.fixture
async def openai_realtime(emulator: EmulatorProcess) -> AsyncIterator[OpenAIRealtimeProvider]:
    provider = make_realtime_provider(
        "openai", model=MODEL, base_url=emulator.openai_base_url, api_key="sk-test"
    )
    assert isinstance(provider, OpenAIRealtimeProvider)
    yield provider
    await provider.aclose()


def chat(request_id: str, text: str, **kwargs: Any) -> BatchRequest:
    return BatchRequest(id=request_id, messages=[{"role": "user", "content": text}], **kwargs)


def tickets(count: int, prefix: str = "t", **kwargs: Any) -> list[BatchRequest]:
    return [
        chat(f"{prefix}{index}", f"Classify ticket {index}: my parcel never arrived", **kwargs)
        for index in range(count)
    ]


def sqlite_limiter(path: Path, rpm: float, tpm: float, **kwargs: Any) -> RateLimiter:
    return RateLimiter.from_url(
        f"sqlite:///{path}", requests_per_minute=rpm, tokens_per_minute=tpm, key="openai:test", **kwargs
    )


def emulator_stats(emulator: EmulatorProcess) -> dict[str, Any]:
    return emulator.stats()


def reset_stats(emulator: EmulatorProcess) -> None:
    httpx.delete(f"{emulator.url}/_emulator/stats", timeout=10).raise_for_status()


def chat_calls(emulator: EmulatorProcess) -> int:
    return int(emulator.stats()["requests_by_endpoint"].get("chat.completions", 0))
