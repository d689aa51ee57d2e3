"""Request packing: k items per call, parsed back per item, single calls for what a pack cannot answer."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine.models import BatchRequest
from batch_pipelines.providers.openai_realtime import OpenAIRealtimeProvider
from batch_pipelines.realtime import Packing, WorkQueue, process_realtime
from batch_pipelines.realtime.packing import plan_packs
from batch_pipelines_tests.realtime.conftest import chat, chat_calls, tickets

pytestmark = pytest.mark.anyio

LABEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["billing", "shipping", "other"]}},
    "required": ["label"],
    "additionalProperties": False,
}


def classify(count: int) -> list[BatchRequest]:
    return tickets(count, system="Classify the support ticket.", max_tokens=20)


async def test_packed_items_are_answered_in_one_call_per_pack(
    emulator: EmulatorProcess, openai_realtime: OpenAIRealtimeProvider, queue: WorkQueue
) -> None:
    summary = await process_realtime(
        classify(10),
        provider_client=openai_realtime,
        limiter=None,
        queue=queue,
        concurrency=2,
        response_schema=LABEL_SCHEMA,
        packing=Packing(items_per_prompt=5),
    )

    assert (summary.packed_calls, summary.fallback_calls, summary.answered) == (2, 0, 10)
    assert chat_calls(emulator) == 2
    results = await queue.results()
    assert [result.id for result in results] == [f"t{index}" for index in range(10)]
    for result in results:
        jsonschema.validate(result.parsed, LABEL_SCHEMA)
        assert result.input_tokens > 0 and result.cost_usd is not None
    assert sum(result.input_tokens for result in results) == summary.input_tokens


async def test_items_whose_packed_answer_is_invalid_fall_back_to_single_calls(
    emulator: EmulatorProcess, openai_realtime: OpenAIRealtimeProvider, queue: WorkQueue
) -> None:
    # Inside the pack the model may also answer "unknown", which no item's own schema accepts.
    loose = {**LABEL_SCHEMA, "properties": {"label": {"type": "string", "enum": ["billing", "unknown"]}}}
    summary = await process_realtime(
        classify(12),
        provider_client=openai_realtime,
        limiter=None,
        queue=queue,
        concurrency=1,
        response_schema=LABEL_SCHEMA,
        packing=Packing(items_per_prompt=4, answer_schema=loose),
    )

    assert summary.packed_calls == 3 and 0 < summary.fallback_calls < 12
    assert chat_calls(emulator) == summary.packed_calls + summary.fallback_calls
    results = await queue.results()
    assert len(results) == 12 and all(result.ok for result in results)
    for result in results:
        jsonschema.validate(result.parsed, LABEL_SCHEMA)


async def test_a_pack_the_provider_rejects_is_answered_item_by_item(
    emulator: EmulatorProcess, openai_realtime: OpenAIRealtimeProvider, queue: WorkQueue
) -> None:
    work = [
        *classify(3),
        chat(
            "poison",
            "[[emulator:invalid_request]] refund",
            system="Classify the support ticket.",
            max_tokens=20,
        ),
    ]
    summary = await process_realtime(
        work,
        provider_client=openai_realtime,
        limiter=None,
        queue=queue,
        response_schema=LABEL_SCHEMA,
        packing=Packing(items_per_prompt=4),
    )

    assert (summary.packed_calls, summary.fallback_calls) == (1, 4)
    assert (summary.answered, summary.dead_lettered) == (3, 1)
    assert [dead.item_id for dead in await queue.dead_letters()] == ["poison"]


async def test_packs_respect_the_context_window_and_only_join_requests_of_the_same_shape(
    openai_realtime: OpenAIRealtimeProvider,
) -> None:
    same = classify(6)
    other = [chat("odd", "a ticket with another system prompt", system="Summarise.")]
    [three] = plan_packs(same[:3], Packing(items_per_prompt=3), None, openai_realtime.estimate_tokens)[0]
    window = openai_realtime.estimate_tokens(three.request) - 1  # two items fit, three do not

    packs, singles = plan_packs(
        [*same, *other],
        Packing(items_per_prompt=5, context_window_tokens=window),
        None,
        openai_realtime.estimate_tokens,
    )

    assert [request.id for request in singles] == ["odd"]
    assert [len(pack.items) for pack in packs] == [2, 2, 2]
    assert [request.id for pack in packs for request in pack.items] == [request.id for request in same]
    assert all(openai_realtime.estimate_tokens(pack.request) <= window for pack in packs)


async def test_a_pack_that_keeps_failing_transiently_is_redelivered_and_its_items_go_alone(
    emulator: EmulatorProcess, openai_realtime: OpenAIRealtimeProvider, queue: WorkQueue
) -> None:
    # The marker fails the first two sends of the exact text carrying it: the pack's, then the item's.
    flaky = chat(
        "flaky", "[[emulator:server_error:2]] refund", system="Classify the support ticket.", max_tokens=20
    )
    summary = await process_realtime(
        [*classify(3), flaky],
        provider_client=openai_realtime,
        limiter=None,
        queue=queue,
        concurrency=1,
        response_schema=LABEL_SCHEMA,
        packing=Packing(items_per_prompt=4),
        max_call_attempts=2,
        initial_retry_wait_s=0.01,
        max_retry_wait_s=0.02,
        retry_delay_s=0.01,
    )

    assert summary.answered == 4 and summary.dead_lettered == 0
    assert (summary.packed_calls, summary.fallback_calls) == (1, 0)
    # pack: 2 failed sends; then alone: 3 clean items, and the flaky one fails twice, then succeeds.
    assert chat_calls(emulator) == 2 + 3 + 2 + 1
    attempts = {result.id: result.attempt for result in await queue.results()}
    assert attempts == {"t0": 2, "t1": 2, "t2": 2, "flaky": 3}
