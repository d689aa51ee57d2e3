"""The realtime clients against the emulator: answers, usage, the budget read from rate-limit headers."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine.errors import ProviderError
from batch_pipelines.engine.models import BatchRequest
from batch_pipelines.providers.anthropic_realtime import AnthropicRealtimeProvider
from batch_pipelines.providers.openai_realtime import OpenAIRealtimeProvider, parse_duration
from batch_pipelines.providers.realtime import Budget, RateLimitSnapshot, RealtimeCallError
from batch_pipelines.ratelimit import RateLimiter
from batch_pipelines.realtime import ProviderBudget, WorkQueue, make_realtime_provider, process_realtime
from batch_pipelines_tests.realtime.conftest import chat, tickets

pytestmark = pytest.mark.anyio


async def test_openai_answers_carry_usage_and_the_remaining_budget(
    emulator: EmulatorProcess, openai_realtime: OpenAIRealtimeProvider
) -> None:
    emulator.configure({"rate_limits": {"rpm": 50, "tpm": 10_000}})
    request = chat("a", "Classify: my parcel never arrived", max_tokens=16)

    answer = await openai_realtime.call(request, None)

    assert answer.result.ok and answer.result.response and answer.result.input_tokens > 0
    assert answer.limit_tokens == answer.result.input_tokens + 16  # the prompt plus the reserved max_tokens
    assert openai_realtime.estimate_tokens(request) >= answer.limit_tokens
    assert answer.rate_limits is not None and answer.rate_limits.requests is not None
    assert (answer.rate_limits.requests.limit, answer.rate_limits.requests.remaining) == (50, 49)
    assert answer.rate_limits.tokens is not None
    assert answer.rate_limits.tokens.remaining == 10_000 - answer.limit_tokens
    assert 0 < answer.rate_limits.requests.reset_s <= 60 / 50 + 0.01


async def test_openai_embeddings_come_back_as_vectors(openai_realtime: OpenAIRealtimeProvider) -> None:
    answer = await openai_realtime.call(BatchRequest("e", input="a short text"), None)

    assert answer.result.embedding is not None and len(answer.result.embedding) == 1536
    assert answer.result.input_tokens > 0 and answer.limit_tokens == answer.result.input_tokens


async def test_a_429_raises_with_the_retry_after_and_the_budget(
    emulator: EmulatorProcess, openai_realtime: OpenAIRealtimeProvider
) -> None:
    emulator.configure({"rate_limits": {"rpm": 1, "window_s": 60}})
    await openai_realtime.call(chat("first", "hello"), None)

    with pytest.raises(RealtimeCallError) as raised:
        await openai_realtime.call(chat("second", "hello"), None)

    error = raised.value
    assert error.status_code == 429 and error.retryable and error.error_type == "rate_limit"
    assert error.retry_after_s is not None and error.retry_after_s > 1
    assert error.rate_limits is not None and error.rate_limits.requests is not None
    requests = error.rate_limits.requests
    assert (requests.limit, requests.remaining) == (1, 0) and 58 < requests.reset_s <= 60


async def test_anthropic_messages_through_the_worker_pool_stay_inside_the_limits(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    emulator.configure({"rate_limits": {"rpm": 20, "tpm": 4_000, "window_s": 2.0}})
    provider = make_realtime_provider(
        "anthropic", model="claude-haiku-4-5", base_url=emulator.anthropic_base_url, api_key="sk-ant-test"
    )
    assert isinstance(provider, AnthropicRealtimeProvider)
    limiter = RateLimiter.from_url(
        f"sqlite:///{tmp_path / 'limiter.db'}",
        requests_per_minute=20,
        tokens_per_minute=4_000,
        period_seconds=2.0,
        key="anthropic:claude-haiku-4-5",
    )
    queue = WorkQueue(tmp_path / "q.db")

    summary = await process_realtime(
        tickets(24, max_tokens=40), provider_client=provider, limiter=limiter, queue=queue, concurrency=8
    )
    await provider.aclose()

    assert summary.answered == 24 and emulator.stats()["rate_limited_429"] == 0
    results = await queue.results()
    assert all(result.ok and result.response and result.output_tokens > 0 for result in results)


async def test_anthropic_structured_output_comes_back_parsed(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["billing", "shipping"]}},
        "required": ["label"],
        "additionalProperties": False,
    }
    provider = make_realtime_provider(
        "anthropic", model="claude-haiku-4-5", base_url=emulator.anthropic_base_url, api_key="sk-ant-test"
    )
    queue = WorkQueue(tmp_path / "q.db")

    summary = await process_realtime(
        tickets(3), provider_client=provider, limiter=None, queue=queue, response_schema=schema
    )
    await provider.aclose()

    assert summary.answered == 3
    assert all(result.parsed["label"] in ("billing", "shipping") for result in await queue.results())


async def test_anthropic_reports_its_budget_from_its_own_headers(emulator: EmulatorProcess) -> None:
    emulator.configure({"rate_limits": {"rpm": 30, "tpm": 5_000}})
    provider = AnthropicRealtimeProvider(
        "claude-haiku-4-5", base_url=emulator.anthropic_base_url, api_key="sk-ant-test"
    )
    answer = await provider.call(chat("a", "hello", max_tokens=32), None)
    await provider.aclose()

    assert answer.rate_limits is not None and answer.rate_limits.requests is not None
    assert (answer.rate_limits.requests.limit, answer.rate_limits.requests.remaining) == (30, 29)
    assert answer.rate_limits.tokens is not None and answer.rate_limits.tokens.limit == 5_000


def test_openai_reset_durations_are_read_in_seconds() -> None:
    assert parse_duration("12ms") == pytest.approx(0.012)
    assert parse_duration("1.5s") == pytest.approx(1.5)
    assert parse_duration("6m0s") == pytest.approx(360)
    assert parse_duration("1h2m3s") == pytest.approx(3723)
    assert parse_duration("soon") == 0


def test_the_budget_waits_for_what_the_provider_says_is_gone() -> None:
    now = [100.0]
    budget = ProviderBudget(clock=lambda: now[0])
    first = budget.record_send(10)
    in_flight = budget.record_send(10)
    # 10 requests per 10 s: none left, full again in 10 s, so one comes back every second.
    budget.observe(first, RateLimitSnapshot(Budget(10, 0, 10.0), None))

    # The request still in flight may not be in the report yet: it counts against the budget too.
    assert budget.wait_seconds(10) == pytest.approx(2.0)
    now[0] += 1.5
    assert budget.wait_seconds(10) == pytest.approx(0.5)
    budget.observe(in_flight, None)  # answered without headers: nothing new is known
    now[0] += 0.5
    assert budget.wait_seconds(10) == 0
    budget.record_send(10)
    assert budget.wait_seconds(10) == pytest.approx(1.0)  # our own send since the report counts


def test_the_budget_refills_from_when_the_report_arrived() -> None:
    now = [0.0]
    budget = ProviderBudget(clock=lambda: now[0])
    ticket = budget.record_send(100)
    now[0] = 5.0  # a slow answer: the report describes the budget at some moment in these 5 s
    budget.observe(ticket, RateLimitSnapshot(None, Budget(1_000, 0, 10.0)))

    assert budget.wait_seconds(300) == pytest.approx(3.0)  # 100 tokens/s, counted from the arrival


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_both_transports_answer_and_refuse_alike(emulator: EmulatorProcess, transport: str) -> None:
    emulator.configure({"rate_limits": {"rpm": 2, "window_s": 60}})
    provider = make_realtime_provider(
        "openai",
        model="gpt-4o-mini",
        base_url=emulator.openai_base_url,
        api_key="sk-transport",
        transport=transport,  # type: ignore[arg-type]
    )
    try:
        answer = await provider.call(chat("ok", "Classify: my parcel never arrived", max_tokens=8), None)
        await provider.call(chat("spends-the-rest", "hello"), None)
        with pytest.raises(RealtimeCallError) as raised:
            await provider.call(chat("refused", "hello"), None)
    finally:
        await provider.aclose()

    assert answer.result.ok and answer.result.output_tokens > 0
    assert answer.rate_limits is not None and answer.rate_limits.requests is not None
    assert raised.value.status_code == 429 and raised.value.retryable
    assert raised.value.retry_after_s is not None and raised.value.retry_after_s > 1
    assert "sk-transport" not in repr(provider) and "sk-transport" not in str(raised.value)


async def test_a_dead_port_is_a_retryable_connection_error() -> None:
    provider = make_realtime_provider(
        "openai", model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1", api_key="k"
    )
    try:
        with pytest.raises(ProviderError) as raised:
            await provider.call(chat("a", "hello"), None)
    finally:
        await provider.aclose()

    assert raised.value.error_type == "connection" and raised.value.retryable
