"""The official openai SDK against the emulator: reasoning models refuse the parameters the API refuses,
with the API's error shapes, both on the realtime endpoint and line by line inside a batch."""

from __future__ import annotations

import openai
import pytest

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.emulator.helpers import parse_jsonl, upload, wait_for_batch

MESSAGES = [{"role": "user", "content": "Classify this ticket: my parcel never arrived"}]


@pytest.fixture
def client(emulator: EmulatorProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-test", max_retries=0)


def test_gpt_5_mini_refuses_max_tokens_and_takes_max_completion_tokens(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gpt-5-mini", messages=MESSAGES, max_tokens=16)  # type: ignore[arg-type]
    assert refused.value.status_code == 400
    assert refused.value.code == "unsupported_parameter"
    assert refused.value.param == "max_tokens"
    assert "max_completion_tokens" in refused.value.message

    answer = client.chat.completions.create(
        model="gpt-5-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_completion_tokens=16,
        reasoning_effort="low",
    )
    assert answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.completion_tokens <= 16


@pytest.mark.parametrize("model", ["gpt-5", "o3-mini", "o4-mini-2025-04-16", "o1"])
def test_reasoning_models_take_only_the_default_temperature_and_top_p(
    client: openai.OpenAI, model: str
) -> None:
    for name, value in (("temperature", 0.2), ("top_p", 0.5)):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model=model, messages=MESSAGES, **{name: value})  # type: ignore[call-overload]
        assert refused.value.code == "unsupported_value" and refused.value.param == name
    accepted = client.chat.completions.create(model=model, messages=MESSAGES, temperature=1, top_p=1)  # type: ignore[arg-type]
    assert accepted.choices[0].message.content


def test_older_chat_models_keep_max_tokens_and_sampling_but_refuse_reasoning_effort(
    client: openai.OpenAI,
) -> None:
    answer = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        max_tokens=16,
        temperature=0.2,
        top_p=0.5,
    )
    assert answer.choices[0].message.content
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gpt-4.1", messages=MESSAGES, reasoning_effort="low")  # type: ignore[arg-type]
    assert refused.value.code == "unsupported_parameter" and refused.value.param == "reasoning_effort"


def test_a_batch_answers_each_refused_line_with_its_own_400(client: openai.OpenAI) -> None:
    def line(custom_id: str, **params: object) -> dict[str, object]:
        body = {"model": "gpt-5-mini", "messages": MESSAGES, **params}
        return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}

    lines = [
        line("capped-old-way", max_tokens=16),
        line("cold", temperature=0),
        line("capped", max_completion_tokens=16),
        line("plain"),
    ]
    batch = client.batches.create(
        input_file_id=upload(client, lines), endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = wait_for_batch(client, batch.id)
    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 2)
    assert done.output_file_id and done.error_file_id
    succeeded = {r["custom_id"] for r in parse_jsonl(client.files.content(done.output_file_id).text)}
    assert succeeded == {"capped", "plain"}
    errors = {
        r["custom_id"]: r["response"] for r in parse_jsonl(client.files.content(done.error_file_id).text)
    }
    assert errors["capped-old-way"]["status_code"] == 400
    assert errors["capped-old-way"]["body"]["error"]["code"] == "unsupported_parameter"
    assert errors["capped-old-way"]["body"]["error"]["param"] == "max_tokens"
    assert errors["cold"]["body"]["error"]["code"] == "unsupported_value"
    assert errors["cold"]["body"]["error"]["type"] == "invalid_request_error"
