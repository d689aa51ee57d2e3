"""BatchManager.submit(max_cost_usd=…): work estimated over budget is refused before anything is uploaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_pipelines import BatchManager, BatchRequest, BatchStore, OpenAIProvider
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine import BudgetExceededError, JobNotFoundError

pytestmark = pytest.mark.anyio


def requests(count: int, max_tokens: int = 500) -> list[BatchRequest]:
    return [
        BatchRequest(
            id=f"r{i}", messages=[{"role": "user", "content": f"Summarise item {i}"}], max_tokens=max_tokens
        )
        for i in range(count)
    ]


async def test_over_budget_is_refused_before_any_upload(emulator: EmulatorProcess, tmp_path: Path) -> None:
    provider = OpenAIProvider("gpt-4o-mini", base_url=emulator.openai_base_url, api_key="sk-test")
    store = BatchStore(tmp_path / "batches.db")
    manager = BatchManager(provider=provider, store=store)
    # 200 answers of up to 500 tokens at $0.60/M, halved for batch: about $0.03 before the inputs.
    with pytest.raises(BudgetExceededError) as refused:
        await manager.submit(
            requests(200), job_id="too-dear", max_cost_usd=0.01, budget_note="per-run budget"
        )
    message = str(refused.value)
    assert "'too-dear'" in message and "$0.0100" in message and "per-run budget" in message
    assert refused.value.estimated_usd is not None and refused.value.estimated_usd > 0.01
    stats = emulator.stats()
    assert stats["files"] == 0 and stats["batches_created"]["openai"] == 0
    with pytest.raises(JobNotFoundError):
        await manager.get_job("too-dear")

    job = await manager.submit(requests(200), job_id="affordable", max_cost_usd=1.0)
    assert job.cost.estimated_usd is not None and job.cost.estimated_usd <= 1.0
    assert emulator.stats()["batches_created"]["openai"] == 1
    await provider.aclose()
    await store.close()


async def test_a_model_without_a_price_cannot_promise_a_budget(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    provider = OpenAIProvider("my-finetune", base_url=emulator.openai_base_url, api_key="sk-test")
    manager = BatchManager(provider=provider, store=BatchStore(tmp_path / "batches.db"))
    with pytest.raises(BudgetExceededError, match="cannot be estimated"):
        await manager.submit(requests(2), job_id="unpriced", max_cost_usd=100.0)
    assert emulator.stats()["files"] == 0
    unbounded = await manager.submit(requests(2), job_id="unpriced")
    assert unbounded.cost.estimated_usd is None
    await provider.aclose()
