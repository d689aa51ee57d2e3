"""The official anthropic SDK against the emulator: Messages and Message Batches."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.emulator.helpers import wait_until

MODEL = "claude-haiku-4-5"


@pytest.fixture
def client(emulator: EmulatorProcess) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=emulator.anthropic_base_url, api_key="sk-ant-test", max_retries=0)


def batch_request(custom_id: str, prompt: str) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "params": {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": prompt}]},
    }


def wait_ended(client: anthropic.Anthropic, batch_id: str) -> Any:
    return wait_until(
        lambda: client.messages.batches.retrieve(batch_id), lambda b: b.processing_status == "ended"
    )


def test_messages_returns_a_full_message_object(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=200, system="Be brief.", messages=[{"role": "user", "content": "Hello"}]
    )
    again = client.messages.create(
        model=MODEL, max_tokens=200, system="Be brief.", messages=[{"role": "user", "content": "Hello"}]
    )
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == MODEL and message.stop_reason == "end_turn"
    assert message.content[0].type == "text" and message.content[0].text
    assert message.content == again.content
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_a_message_batch_runs_to_completion_with_both_result_shapes(client: anthropic.Anthropic) -> None:
    requests = [batch_request(f"ticket_{i}", f"Summarise ticket {i}") for i in range(12)]
    requests[4] = batch_request("ticket_4", "bad one [[emulator:invalid_request]]")
    requests[5] = batch_request("ticket_5", "busy [[emulator:overloaded]]")
    requests[6] = {
        "custom_id": "ticket_6",
        "params": {"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
    }
    created = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert created.id.startswith("msgbatch_") and created.type == "message_batch"
    assert created.processing_status == "in_progress"
    assert created.request_counts.processing == 12 and created.request_counts.succeeded == 0
    assert created.results_url is None
    assert isinstance(created.created_at, datetime)

    ended = wait_ended(client, created.id)

    counts = ended.request_counts
    assert (counts.succeeded, counts.errored) == (9, 3)
    assert counts.processing == counts.canceled == counts.expired == 0
    assert ended.ended_at is not None and ended.results_url
    results = {item.custom_id: item.result for item in client.messages.batches.results(created.id)}
    assert set(results) == {f"ticket_{i}" for i in range(12)}
    assert results["ticket_0"].type == "succeeded"
    assert results["ticket_0"].message.content[0].text  # type: ignore[union-attr]
    bad = results["ticket_4"]
    assert bad.type == "errored"
    assert bad.error.type == "error" and bad.error.error.type == "invalid_request_error"  # type: ignore[union-attr]
    assert results["ticket_5"].error.error.type == "overloaded_error"  # type: ignore[union-attr]
    assert "max_tokens" in results["ticket_6"].error.error.message  # type: ignore[union-attr]


def test_cancel_ends_with_canceled_results(client: anthropic.Anthropic, emulator: EmulatorProcess) -> None:
    emulator.configure({"lifecycle": {"in_progress_min_s": 200, "in_progress_max_s": 200}})
    created = client.messages.batches.create(
        requests=[batch_request(f"c{i}", f"q{i}") for i in range(30)]  # type: ignore[misc]
    )
    canceling = client.messages.batches.cancel(created.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(created.id)  # only ended batches can be deleted

    ended = wait_ended(client, created.id)
    assert ended.request_counts.canceled > 0
    assert ended.request_counts.succeeded + ended.request_counts.canceled == 30
    kinds = {item.result.type for item in client.messages.batches.results(created.id)}
    assert "canceled" in kinds

    deleted = client.messages.batches.delete(created.id)
    assert (deleted.id, deleted.type) == (created.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(created.id)


def test_expiry_marks_unfinished_requests_expired(
    client: anthropic.Anthropic, emulator: EmulatorProcess
) -> None:
    emulator.queue_scenario("expire_half", provider="anthropic")
    created = client.messages.batches.create(
        requests=[batch_request(f"e{i}", f"q{i}") for i in range(20)]  # type: ignore[misc]
    )
    ended = wait_ended(client, created.id)
    assert 0 < ended.request_counts.expired < 20
    assert ended.request_counts.succeeded + ended.request_counts.expired == 20
    expired = [i.custom_id for i in client.messages.batches.results(created.id) if i.result.type == "expired"]
    assert len(expired) == ended.request_counts.expired


def test_list_is_newest_first_and_pages_both_ways(client: anthropic.Anthropic) -> None:
    created = [client.messages.batches.create(requests=[batch_request("a", "q")]).id for _ in range(5)]  # type: ignore[list-item]
    newest_first = created[::-1]

    first = client.messages.batches.list(limit=2)
    assert [b.id for b in first.data] == newest_first[:2]
    assert first.has_more and first.first_id == newest_first[0] and first.last_id == newest_first[1]
    after = client.messages.batches.list(limit=2, after_id=newest_first[1])
    assert [b.id for b in after.data] == newest_first[2:4]
    before = client.messages.batches.list(limit=2, before_id=newest_first[3])
    assert [b.id for b in before.data] == newest_first[1:3]
    assert [b.id for b in client.messages.batches.list(limit=2)] == newest_first  # the SDK's auto-paging


def test_bad_requests_get_anthropic_error_shapes(
    client: anthropic.Anthropic, emulator: EmulatorProcess
) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.batches.retrieve("msgbatch_unknown")
    assert missing.value.body["type"] == "error"  # type: ignore[index]
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as bad_id:
        client.messages.batches.create(requests=[batch_request("has space", "q")])  # type: ignore[list-item]
    assert "custom_id" in bad_id.value.message
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.create(requests=[batch_request("dup", "q"), batch_request("dup", "r")])  # type: ignore[list-item]
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=MODEL, max_tokens=0, messages=[{"role": "user", "content": "x"}])

    url = f"{emulator.anthropic_base_url}/v1/messages"
    body = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}
    no_version = httpx.post(url, json=body, headers={"x-api-key": "k"})
    assert no_version.status_code == 400 and no_version.json()["error"]["type"] == "invalid_request_error"
    with_x_api_key = httpx.post(url, json=body, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})
    assert with_x_api_key.status_code == 200

    emulator.configure({"api_keys": ["sk-ant-right"]})
    with pytest.raises(anthropic.AuthenticationError) as unauthorised:
        client.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert unauthorised.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


def test_rate_limited_messages_are_retried_by_the_sdk(emulator: EmulatorProcess) -> None:
    emulator.configure({"rate_limits": {"rpm": 1, "window_s": 0.5}})
    client = anthropic.Anthropic(base_url=emulator.anthropic_base_url, api_key="sk-ant-test", max_retries=4)
    for _ in range(3):
        message = client.messages.create(
            model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "x"}]
        )
        assert message.content
    assert emulator.stats()["rate_limited_429"] >= 1

    raw = httpx.post(
        f"{emulator.anthropic_base_url}/v1/messages",
        json={"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "y"}]},
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    raw_again = httpx.post(
        f"{emulator.anthropic_base_url}/v1/messages",
        json={"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "y"}]},
        headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    limited = raw if raw.status_code == 429 else raw_again
    assert limited.status_code == 429
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert "retry-after" in limited.headers
    reset = limited.headers["anthropic-ratelimit-requests-reset"]
    assert datetime.fromisoformat(reset.replace("Z", "+00:00")).tzinfo is not None


def test_overloaded_is_529(emulator: EmulatorProcess) -> None:
    client = anthropic.Anthropic(base_url=emulator.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(
            model=MODEL, max_tokens=20, messages=[{"role": "user", "content": "[[emulator:overloaded]]"}]
        )
    assert raised.value.status_code == 529
    assert raised.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_a_restarted_emulator_still_finishes_message_batches(tmp_path: Path) -> None:
    with EmulatorProcess(time_scale=0.05, state_dir=tmp_path) as emulator:
        emulator.configure({"lifecycle": {"in_progress_min_s": 40, "in_progress_max_s": 40}})
        client = anthropic.Anthropic(base_url=emulator.anthropic_base_url, api_key="k", max_retries=0)
        created = client.messages.batches.create(
            requests=[
                batch_request(f"r{i}", f"q{i} [[emulator:invalid_request]]" if i == 0 else f"q{i}")
                for i in range(4)
            ]  # type: ignore[misc]
        )
        emulator.kill()
        emulator.start()
        client = anthropic.Anthropic(base_url=emulator.anthropic_base_url, api_key="k", max_retries=0)
        ended = wait_ended(client, created.id)
        assert (ended.request_counts.succeeded, ended.request_counts.errored) == (3, 1)
        results = {item.custom_id: item.result.type for item in client.messages.batches.results(created.id)}
        assert results == {"r0": "errored", "r1": "succeeded", "r2": "succeeded", "r3": "succeeded"}
