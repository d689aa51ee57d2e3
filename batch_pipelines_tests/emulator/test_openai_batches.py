"""The official openai SDK drives the emulator's Files and Batch APIs end to end."""

from __future__ import annotations

import io
import json

import openai
import pytest

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.emulator.helpers import chat_line, parse_jsonl, upload, wait_for_batch, wait_until


@pytest.fixture
def client(emulator: EmulatorProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-test", max_retries=0)


def test_a_batch_runs_to_completion_and_results_join_on_custom_id(client: openai.OpenAI) -> None:
    lines = [chat_line(f"item-{i}", f"Summarise ticket {i}") for i in range(20)]
    lines[3] = chat_line("item-3", "Summarise ticket 3 [[emulator:invalid_request]]")
    lines[7] = chat_line("item-7", "Summarise ticket 7 [[emulator:no_response]]")
    file_id = upload(client, lines)

    created = client.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "t1"},
    )
    assert created.status == "validating"
    # As at OpenAI, the create call does not wait for the file to be checked: nothing is counted yet.
    assert created.request_counts is not None and created.request_counts.total == 0
    assert created.metadata == {"job": "t1"}
    batch = wait_for_batch(client, created.id)

    assert batch.status == "completed"
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (
        20,
        18,
        2,
    )
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at
    assert batch.output_file_id and batch.error_file_id
    outputs = parse_jsonl(client.files.content(batch.output_file_id).text)
    errors = parse_jsonl(client.files.content(batch.error_file_id).text)
    assert {line["custom_id"] for line in outputs} == {f"item-{i}" for i in range(20)} - {"item-3", "item-7"}
    assert [line["custom_id"] for line in outputs] != sorted(line["custom_id"] for line in outputs)
    first = outputs[0]
    assert first["id"].startswith("batch_req_") and first["error"] is None
    assert first["response"]["status_code"] == 200
    completion = openai.types.chat.ChatCompletion.model_validate(first["response"]["body"])
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    by_id = {line["custom_id"]: line for line in errors}
    assert by_id["item-3"]["response"]["status_code"] == 400
    assert by_id["item-3"]["response"]["body"]["error"]["type"] == "invalid_request_error"
    assert by_id["item-7"]["response"] is None
    assert by_id["item-7"]["error"]["code"] == "server_error"
    assert batch.usage is not None and batch.usage.input_tokens > 0 and batch.usage.output_tokens > 0
    output_file = client.files.retrieve(batch.output_file_id)
    assert output_file.purpose == "batch_output"


def test_same_requests_give_same_answers(client: openai.OpenAI) -> None:
    answers = []
    for _ in range(2):
        batch = client.batches.create(
            input_file_id=upload(client, [chat_line("a", "Classify: refund please")]),
            endpoint="/v1/chat/completions",
            completion_window="24h",
        )
        finished = wait_for_batch(client, batch.id)
        [line] = parse_jsonl(client.files.content(finished.output_file_id).text)
        answers.append(line["response"]["body"]["choices"][0]["message"]["content"])
    assert answers[0] == answers[1]


def test_cancel_finishes_in_flight_requests_and_drops_the_rest(
    client: openai.OpenAI, emulator: EmulatorProcess
) -> None:
    emulator.configure({"lifecycle": {"in_progress_min_s": 200, "in_progress_max_s": 200}})
    batch = client.batches.create(
        input_file_id=upload(client, [chat_line(f"c{i}", f"q{i}") for i in range(50)]),
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    wait_until(lambda: client.batches.retrieve(batch.id), lambda b: b.request_counts.completed >= 5)

    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    done = wait_for_batch(client, batch.id)

    assert done.status == "cancelled" and done.cancelled_at is not None
    finished = done.request_counts.completed
    assert cancelling.request_counts.completed < finished < 50  # in-flight ones completed, the rest never ran
    outputs = parse_jsonl(client.files.content(done.output_file_id).text)
    assert len(outputs) == finished
    with pytest.raises(openai.BadRequestError) as raised:
        client.batches.cancel(batch.id)
    assert raised.value.status_code == 400


def test_expired_batch_keeps_finished_rows_and_lists_the_rest_as_batch_expired(
    client: openai.OpenAI, emulator: EmulatorProcess
) -> None:
    emulator.queue_scenario("expire_half", provider="openai")
    batch = client.batches.create(
        input_file_id=upload(client, [chat_line(f"e{i}", f"q{i}") for i in range(40)]),
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    done = wait_for_batch(client, batch.id)

    assert done.status == "expired" and done.expired_at is not None
    outputs = parse_jsonl(client.files.content(done.output_file_id).text)
    errors = parse_jsonl(client.files.content(done.error_file_id).text)
    assert 0 < len(outputs) < 40
    assert len(outputs) + len(errors) == 40
    assert {line["error"]["code"] for line in errors} == {"batch_expired"}
    assert all(line["response"] is None for line in errors)
    assert {line["custom_id"] for line in outputs + errors} == {f"e{i}" for i in range(40)}


def test_input_validation_fails_the_batch_with_line_numbers(client: openai.OpenAI) -> None:
    good = json.dumps(chat_line("x1", "fine"))
    duplicate = json.dumps(chat_line("x1", "again"))
    wrong_url = json.dumps({**chat_line("x3", "q"), "url": "/v1/embeddings"})
    content = "\n".join([good, "{not json", duplicate, wrong_url]).encode()
    file_id = client.files.create(file=("bad.jsonl", io.BytesIO(content)), purpose="batch").id

    batch = client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = wait_for_batch(client, batch.id)

    assert done.status == "failed" and done.failed_at is not None
    assert done.errors is not None and done.errors.data is not None
    found = [(error.code, error.line) for error in done.errors.data]
    assert found == [("invalid_json_line", 2), ("duplicate_custom_id", 3), ("invalid_url", 4)]
    assert done.output_file_id is None


def test_enqueued_token_limit_fails_after_a_successful_create(
    client: openai.OpenAI, emulator: EmulatorProcess
) -> None:
    emulator.configure({"limits": {"openai_enqueued_tokens": 50}})
    batch = client.batches.create(
        input_file_id=upload(client, [chat_line(f"t{i}", "a fairly long prompt " * 5) for i in range(5)]),
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    assert batch.status == "validating"
    done = wait_for_batch(client, batch.id)
    assert done.status == "failed"
    assert done.errors is not None and done.errors.data is not None
    assert done.errors.data[0].code == "token_limit_exceeded"
    assert "Enqueued token limit reached for gpt-4o-mini" in (done.errors.data[0].message or "")


def test_scenarios_fail_validation_and_stuck_finalizing(
    client: openai.OpenAI, emulator: EmulatorProcess
) -> None:
    emulator.queue_scenario("fail_validation")
    emulator.queue_scenario("stuck_finalizing")
    failed = client.batches.create(
        input_file_id=upload(client, [chat_line("v1", "q")]),
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    stuck = client.batches.create(
        input_file_id=upload(client, [chat_line("s1", "q")]),
        endpoint="/v1/chat/completions",
        completion_window="24h",
    )
    assert wait_for_batch(client, failed.id).status == "failed"
    finalizing = wait_until(lambda: client.batches.retrieve(stuck.id), lambda b: b.status == "finalizing")
    assert finalizing.request_counts.completed == 1  # every request counted, yet not completed
    assert finalizing.finalizing_at is not None and finalizing.completed_at is None


def test_list_pages_with_after_and_limit(client: openai.OpenAI) -> None:
    file_id = upload(client, [chat_line("p", "q")])
    created = [
        client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id
        for _ in range(5)
    ]

    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == created[::-1][:2]
    assert first.has_more is True
    assert first.last_id == created[-2]
    second = client.batches.list(limit=2, after=first.last_id)
    assert [b.id for b in second.data] == created[::-1][2:4]
    assert [b.id for b in client.batches.list(limit=2)] == created[::-1]  # the SDK's auto-paging
    files = client.files.list(purpose="batch", order="asc")
    assert [f.id for f in files.data] == [file_id]


def test_bad_requests_get_openai_error_shapes(client: openai.OpenAI, emulator: EmulatorProcess) -> None:
    with pytest.raises(openai.NotFoundError) as missing_batch:
        client.batches.retrieve("batch_unknown")
    assert missing_batch.value.status_code == 404
    assert missing_batch.value.body == {
        "message": "No batch found with id 'batch_unknown'.",
        "type": "invalid_request_error",
        "param": "batch_id",
        "code": None,
    }
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-unknown")
    with pytest.raises(openai.NotFoundError):
        client.batches.create(
            input_file_id="file-unknown", endpoint="/v1/chat/completions", completion_window="24h"
        )
    file_id = upload(client, [chat_line("b", "q")])
    with pytest.raises(openai.BadRequestError) as bad_endpoint:
        client.batches.create(input_file_id=file_id, endpoint="/v1/nope", completion_window="24h")  # type: ignore[arg-type]
    assert bad_endpoint.value.param == "endpoint"
    with pytest.raises(openai.BadRequestError) as bad_window:
        client.batches.create(
            input_file_id=file_id,
            endpoint="/v1/chat/completions",
            completion_window="1h",  # type: ignore[arg-type]
        )
    assert bad_window.value.param == "completion_window"

    emulator.configure({"limits": {"openai_max_file_bytes": 100}})
    with pytest.raises(openai.APIStatusError) as too_large:
        upload(client, [chat_line(f"big{i}", "x" * 50) for i in range(5)])
    assert too_large.value.status_code == 413

    emulator.configure({"api_keys": ["sk-right"]})
    with pytest.raises(openai.AuthenticationError) as unauthorised:
        client.batches.list()
    assert unauthorised.value.code == "invalid_api_key"
    assert "sk-test" not in str(unauthorised.value)  # the key is masked
    good = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-right", max_retries=0)
    assert good.batches.list().data is not None


def test_files_can_be_listed_retrieved_and_deleted(client: openai.OpenAI) -> None:
    file_id = upload(client, [chat_line("f", "q")], name="tickets.jsonl")
    stored = client.files.retrieve(file_id)
    assert (stored.filename, stored.purpose, stored.status) == ("tickets.jsonl", "batch", "processed")
    assert json.loads(client.files.content(file_id).text)["custom_id"] == "f"
    deleted = client.files.delete(file_id)
    assert deleted.deleted is True and deleted.id == file_id
    with pytest.raises(openai.NotFoundError):
        client.files.content(file_id)


def test_a_restarted_emulator_with_a_state_dir_continues_the_batch(tmp_path: object) -> None:
    with EmulatorProcess(time_scale=0.05, seed=3, state_dir=str(tmp_path)) as emulator:
        client = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-test", max_retries=0)
        emulator.configure({"lifecycle": {"in_progress_min_s": 60, "in_progress_max_s": 60}})
        batch = client.batches.create(
            input_file_id=upload(client, [chat_line(f"r{i}", f"q{i}") for i in range(5)]),
            endpoint="/v1/chat/completions",
            completion_window="24h",
        )
        emulator.kill()
        emulator.start()
        assert emulator.running
        client = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-test", max_retries=0)
        assert client.batches.retrieve(batch.id).status in ("validating", "in_progress")
        done = wait_for_batch(client, batch.id)
        assert done.status == "completed"
        outputs = parse_jsonl(client.files.content(done.output_file_id).text)
        assert sorted(line["custom_id"] for line in outputs) == [f"r{i}" for i in range(5)]
        emulator.restart()
        assert client.batches.retrieve(batch.id).output_file_id == done.output_file_id


def test_an_embeddings_batch_returns_vectors_per_input(client: openai.OpenAI) -> None:
    lines = [
        {
            "custom_id": f"doc-{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "text-embedding-3-small", "input": f"document {i}", "dimensions": 16},
        }
        for i in range(3)
    ]
    batch = client.batches.create(
        input_file_id=upload(client, lines), endpoint="/v1/embeddings", completion_window="24h"
    )
    done = wait_for_batch(client, batch.id)
    assert done.status == "completed"
    outputs = parse_jsonl(client.files.content(done.output_file_id).text)
    vectors = {line["custom_id"]: line["response"]["body"]["data"][0]["embedding"] for line in outputs}
    assert sorted(vectors) == ["doc-0", "doc-1", "doc-2"]
    assert all(len(vector) == 16 for vector in vectors.values())


def test_a_malformed_request_body_fails_only_that_request(
    client: openai.OpenAI, emulator: EmulatorProcess
) -> None:
    emulator.configure({"lifecycle": {"in_progress_min_s": 50, "in_progress_max_s": 50}})
    broken = {
        "custom_id": "broken",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini"},
    }
    lines = [broken] + [chat_line(f"ok{i}", f"q{i}") for i in range(9)]
    batch = client.batches.create(
        input_file_id=upload(client, lines), endpoint="/v1/chat/completions", completion_window="24h"
    )
    seen = []
    done = wait_until(
        lambda: client.batches.retrieve(batch.id),
        lambda b: (
            seen.append((b.request_counts.completed, b.request_counts.failed)) or b.status == "completed"
        ),
    )
    assert (done.request_counts.completed, done.request_counts.failed) == (9, 1)
    assert all(completed <= 9 and failed <= 1 for completed, failed in seen)  # counts never go backwards
    [error] = parse_jsonl(client.files.content(done.error_file_id).text)
    assert error["custom_id"] == "broken"
    assert error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["param"] == "messages"


def test_an_embeddings_batch_over_the_input_limit_fails_validation(
    client: openai.OpenAI, emulator: EmulatorProcess
) -> None:
    emulator.configure({"limits": {"openai_max_embedding_inputs": 3}})
    lines = [
        {
            "custom_id": f"doc-{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "text-embedding-3-small", "input": ["a", "b"]},
        }
        for i in range(2)
    ]
    batch = client.batches.create(
        input_file_id=upload(client, lines), endpoint="/v1/embeddings", completion_window="24h"
    )
    done = wait_for_batch(client, batch.id)
    assert done.status == "failed"
    assert done.errors is not None and done.errors.data is not None
    assert done.errors.data[0].code == "too_many_inputs"
