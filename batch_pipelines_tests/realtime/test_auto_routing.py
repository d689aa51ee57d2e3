"""Hybrid ``auto`` mode: urgent items answered through the realtime API now, the rest as one batch job,
all results in one shape."""

from __future__ import annotations

import anyio
import pytest

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine.manager import BatchManager
from batch_pipelines.engine.models import BatchRequest, BatchStatus
from batch_pipelines.engine.pricing import price_for
from batch_pipelines.providers.openai import OpenAIProvider
from batch_pipelines.providers.openai_realtime import OpenAIRealtimeProvider
from batch_pipelines.realtime import (
    QueueItem,
    UrgencyRule,
    WorkQueue,
    collect_results,
    process_auto,
    split_urgent,
)
from batch_pipelines_tests.realtime.conftest import chat, chat_calls, tickets

pytestmark = pytest.mark.anyio


async def test_urgent_items_go_realtime_and_the_rest_into_one_batch_with_the_same_results_shape(
    emulator: EmulatorProcess, openai_realtime: OpenAIRealtimeProvider, queue: WorkQueue
) -> None:
    backlog = [QueueItem(request, priority=1) for request in tickets(8, prefix="later")]
    urgent = [QueueItem(chat(f"now{index}", f"site down {index}"), priority=9) for index in range(3)]
    batch_provider = OpenAIProvider("gpt-4o-mini", base_url=emulator.openai_base_url, api_key="sk-test")
    manager = BatchManager(batch_provider)

    outcome = await process_auto(
        [*backlog, *urgent],
        rule=UrgencyRule(priority_threshold=5),
        manager=manager,
        job_id="tickets-auto",
        queue=queue,
        provider_client=openai_realtime,
        limiter=None,
    )

    assert outcome.urgent_ids == ["now0", "now1", "now2"] and len(outcome.batch_ids) == 8
    assert outcome.realtime.answered == 3 and chat_calls(emulator) == 3
    assert outcome.batch_job is not None and emulator.stats()["batches_created"]["openai"] == 1
    with anyio.fail_after(30):
        while True:
            if (await manager.refresh("tickets-auto")).status == BatchStatus.COMPLETED:
                break
            await anyio.sleep(0.05)

    results = await collect_results(queue, manager, "tickets-auto")
    await batch_provider.aclose()
    assert sorted(result.id for result in results) == sorted(item.request.id for item in [*backlog, *urgent])
    assert all(result.ok and result.response and result.input_tokens > 0 for result in results)
    price = price_for("gpt-4o-mini")
    assert price is not None
    for result in results:  # the realtime half pays the synchronous price, the batch half half of it
        synchronous = price.cost(result.input_tokens, result.output_tokens, batch=False)
        share = 1.0 if result.id.startswith("now") else price.batch_discount
        assert result.cost_usd == pytest.approx(synchronous * share)


def test_a_predicate_also_marks_items_urgent() -> None:
    rule = UrgencyRule(priority_threshold=5, predicate=lambda request: "outage" in str(request.messages))
    work: list[BatchRequest | QueueItem] = [
        chat("a", "an outage!"),
        QueueItem(chat("b", "whenever"), priority=7),
        chat("c", "whenever"),
    ]

    urgent, rest = split_urgent(work, rule)

    assert [item.request.id for item in urgent] == ["a", "b"] and [request.id for request in rest] == ["c"]
    with pytest.raises(ValueError, match="needs a priority_threshold"):
        UrgencyRule()
