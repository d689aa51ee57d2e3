"""Fixtures for engine tests: provider clients pointed at the emulator, its admin API, polling helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest

from batch_pipelines import AnthropicProvider, BatchManager, BatchStatus, OpenAIProvider
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine.models import BatchJob, BatchRequest


@pytest.fixture
def admin(emulator: EmulatorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{emulator.url}/_emulator", timeout=10) as client:
        yield client


@pytest.fixture
async def openai_provider(emulator: EmulatorProcess) -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(model="gpt-4o-mini", base_url=emulator.openai_base_url, api_key="sk-test")
    yield provider
    await provider.aclose()


@pytest.fixture
async def anthropic_provider(emulator: EmulatorProcess) -> AsyncIterator[AnthropicProvider]:
    provider = AnthropicProvider(
        model="claude-haiku-4-5", base_url=emulator.anthropic_base_url, api_key="sk-ant-test"
    )
    yield provider
    await provider.aclose()


def queue_scenario(admin: httpx.Client, name: str, provider: str | None = None) -> None:
    admin.post("/scenarios", json={"name": name, "provider": provider}).raise_for_status()


def stats(admin: httpx.Client) -> dict[str, Any]:
    answer: dict[str, Any] = admin.get("/stats").raise_for_status().json()
    return answer


def chat(request_id: str, text: str, **kwargs: Any) -> BatchRequest:
    return BatchRequest(id=request_id, messages=[{"role": "user", "content": text}], **kwargs)


def patch_config(admin: httpx.Client, patch: dict[str, Any]) -> None:
    admin.patch("/config", json=patch).raise_for_status()


async def wait_for(
    manager: BatchManager,
    job_id: str,
    *,
    until: tuple[BatchStatus, ...] | None = None,
    condition: Callable[[BatchJob], bool] | None = None,
    timeout_s: float = 20.0,
) -> BatchJob:
    """Refresh the job until ``condition`` holds (default: its status is terminal, or one of ``until``);
    fail with the last view at the deadline."""
    wanted = until or (BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.CANCELLED)
    check = condition or (lambda job: job.status in wanted)
    with anyio.move_on_after(timeout_s):
        while True:
            job = await manager.refresh(job_id)
            if check(job):
                return job
            await anyio.sleep(0.03)
    raise AssertionError(f"job {job_id}: condition not met in {timeout_s}s: {await manager.get_job(job_id)}")
