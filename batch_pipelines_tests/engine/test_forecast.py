"""The cost forecast of a submission: expected (from the pipeline's history, else a stated default) and
worst case (every answer at max_tokens; what a budget is held to), against the emulator's bills."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_pipelines import AnthropicProvider, BatchManager, BatchStore, OpenAIProvider
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine import BatchJob, BudgetExceededError
from batch_pipelines.engine.forecast import DEFAULT_OUTPUT_RATIO
from batch_pipelines.engine.limits import estimate_tokens
from batch_pipelines.engine.models import BatchRequest
from batch_pipelines.engine.prompt_tokens import EXACT_HEAD, HEURISTIC, PromptTokenCounter
from batch_pipelines_tests.engine.conftest import chat, wait_for

pytestmark = pytest.mark.anyio

MAX_TOKENS = 60


def tickets(first: int, count: int) -> list[BatchRequest]:
    return [
        chat(
            f"t{i}",
            f"Ticket {i}: the {('invoice', 'export', 'dashboard')[i % 3]} page fails " + "again " * (i % 7),
            system="Classify the ticket in one word.",
            max_tokens=MAX_TOKENS,
        )
        for i in range(first, first + count)
    ]


async def submit_and_finish(
    manager: BatchManager, requests: list[BatchRequest], pipeline: str, partition: str
) -> tuple[BatchJob, BatchJob]:
    """The job as submitted (its forecast) and as billed once ended."""
    submitted = await manager.submit(
        requests,
        job_id=f"{pipeline}.{partition}",
        metadata={"pipeline": pipeline, "partition_key": partition},
    )
    await wait_for(manager, submitted.id)
    await manager.get_results(submitted.id)
    return submitted, await manager.get_job(submitted.id)


async def test_expected_learns_from_earlier_partitions_and_the_worst_case_bounds_the_bill(
    openai_provider: OpenAIProvider, tmp_path: Path
) -> None:
    store = BatchStore(tmp_path / "batches.db")
    manager = BatchManager(provider=openai_provider, store=store)

    first, first_billed = await submit_and_finish(manager, tickets(0, 60), "triage", "d1")
    assert first.cost.forecast_basis is not None
    assert first.cost.forecast_basis.startswith("no history: 50 % of max_tokens")
    assert "tiktoken o200k_base" in first.cost.forecast_basis
    # Without history the expected answers are half their cap, the prompts as counted.
    price = openai_provider.price
    assert price is not None and first.cost.counted_input_tokens
    half_answers = price.cost(first.cost.counted_input_tokens, round(60 * MAX_TOKENS * DEFAULT_OUTPUT_RATIO))
    assert first.cost.expected_usd == pytest.approx(half_answers)
    # The worst case: every answer at its cap, prompts never below the (high-side) character estimate.
    estimated_prompts = sum(estimate_tokens(request) for request in tickets(0, 60))
    worst_prompts = max(estimated_prompts, first.cost.counted_input_tokens)
    assert first.cost.worst_case_usd == pytest.approx(price.cost(worst_prompts, 60 * MAX_TOKENS))

    for number, (start, partition) in enumerate(((60, "d2"), (140, "d3")), start=1):
        job, billed = await submit_and_finish(manager, tickets(start, 80), "triage", partition)
        assert job.cost.forecast_basis is not None
        plural = "s" if number > 1 else ""
        assert job.cost.forecast_basis.startswith(f"from {number} earlier partition{plural}: ")
        assert billed.cost.actual_usd is not None and job.cost.expected_usd is not None
        assert abs(job.cost.expected_usd - billed.cost.actual_usd) <= 0.10 * billed.cost.actual_usd
        assert job.cost.worst_case_usd is not None and job.cost.worst_case_usd >= billed.cost.actual_usd
    assert first_billed.cost.worst_case_usd is not None and first_billed.cost.actual_usd is not None
    assert first_billed.cost.worst_case_usd >= first_billed.cost.actual_usd

    # Another pipeline on the same model has no history of its own.
    other = await manager.submit(tickets(0, 5), job_id="other.d1", metadata={"pipeline": "other"})
    assert other.cost.forecast_basis is not None and other.cost.forecast_basis.startswith("no history")
    await store.close()


async def test_a_budget_between_expected_and_worst_case_is_refused_before_upload(
    openai_provider: OpenAIProvider, emulator: EmulatorProcess, tmp_path: Path
) -> None:
    store = BatchStore(tmp_path / "batches.db")
    manager = BatchManager(provider=openai_provider, store=store)
    await submit_and_finish(manager, tickets(0, 40), "triage", "d1")
    files_before = emulator.stats()["files"]

    with pytest.raises(BudgetExceededError) as probe:
        await manager.submit(
            tickets(40, 200), job_id="triage.d2", metadata={"pipeline": "triage"}, max_cost_usd=0
        )
    expected, worst = probe.value.expected_usd, probe.value.estimated_usd
    assert expected is not None and worst is not None and expected < worst
    between = (expected + worst) / 2
    with pytest.raises(BudgetExceededError) as refused:
        await manager.submit(
            tickets(40, 200), job_id="triage.d2", metadata={"pipeline": "triage"}, max_cost_usd=between
        )
    message = str(refused.value)
    assert f"worst case ${worst:.4f}" in message and f"expected ${expected:.4f}" in message
    assert emulator.stats()["files"] == files_before  # nothing of the refused job was uploaded

    job = await manager.submit(
        tickets(40, 200), job_id="triage.d2", metadata={"pipeline": "triage"}, max_cost_usd=worst
    )
    assert job.cost.worst_case_usd == pytest.approx(worst)
    assert emulator.stats()["files"] == files_before + 1
    await store.close()


async def test_a_family_without_a_tokenizer_says_it_used_the_heuristic(
    anthropic_provider: AnthropicProvider, tmp_path: Path
) -> None:
    manager = BatchManager(provider=anthropic_provider, store=BatchStore(tmp_path / "batches.db"))
    job = await manager.submit(tickets(0, 3), job_id="claude.d1")
    assert job.cost.forecast_basis == f"no history: 50 % of max_tokens; prompts: {HEURISTIC}"
    requests = tickets(0, 3)
    assert job.cost.counted_input_tokens == sum(estimate_tokens(request) for request in requests)


def test_openai_prompts_are_counted_with_the_model_s_tokenizer() -> None:
    counter = PromptTokenCounter("openai", "gpt-4o-mini-2024-07-18")
    request = chat("r", "hello world", system="hello world")
    counter.add(request, estimate_tokens(request))
    assert counter.method == "tiktoken o200k_base"
    # "hello world" is 2 tokens in o200k_base; 3 framing tokens for each of 2 messages and the reply.
    assert counter.total == 2 + 2 + 3 * 3
    assert PromptTokenCounter("openai", "my-llama").method == HEURISTIC


def test_a_large_job_is_counted_on_a_sample_close_to_the_exact_count() -> None:
    requests = [
        chat(f"r{i}", f"Order {i * 7919 % 10007}: " + "the parcel arrived damaged, " * (1 + i % 11))
        for i in range(EXACT_HEAD * 4)
    ]
    sampled = PromptTokenCounter("openai", "gpt-4o")
    exact = 0
    for request in requests:
        sampled.add(request, estimate_tokens(request))
        alone = PromptTokenCounter("openai", "gpt-4o")
        alone.add(request, estimate_tokens(request))
        exact += alone.total
    assert abs(sampled.total - exact) <= 0.02 * exact
