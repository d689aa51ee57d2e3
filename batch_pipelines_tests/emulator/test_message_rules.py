"""The emulator refuses a message with an unknown role or without content per line, as the real APIs do:
that line gets a 400 invalid_request_error, the other lines of the batch are answered."""

from __future__ import annotations

from typing import Any

import anthropic
import openai

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.emulator.helpers import chat_line, parse_jsonl, upload, wait_for_batch, wait_until


def test_openai_batch_fails_only_the_lines_with_a_bad_role_or_no_content(emulator: EmulatorProcess) -> None:
    client = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-test", max_retries=0)
    wizard = chat_line("wizard", "x")
    wizard["body"]["messages"] = [{"role": "wizard", "content": "cast a spell"}]
    silent = chat_line("silent", "x")
    silent["body"]["messages"] = [{"role": "user"}]
    lines = [wizard, silent, *(chat_line(f"ok{i}", f"q{i}") for i in range(4))]
    batch = client.batches.create(
        input_file_id=upload(client, lines), endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = wait_for_batch(client, batch.id)

    assert done.status == "completed"
    assert (done.request_counts.completed, done.request_counts.failed) == (4, 2)
    assert {line["custom_id"] for line in parse_jsonl(client.files.content(done.output_file_id).text)} == {
        "ok0",
        "ok1",
        "ok2",
        "ok3",
    }
    errors = {
        line["custom_id"]: line["response"]
        for line in parse_jsonl(client.files.content(done.error_file_id).text)
    }
    assert errors["wizard"]["status_code"] == 400
    assert errors["wizard"]["body"]["error"]["type"] == "invalid_request_error"
    assert errors["wizard"]["body"]["error"]["param"] == "messages[0].role"
    assert "'wizard'" in errors["wizard"]["body"]["error"]["message"]
    assert errors["silent"]["status_code"] == 400
    assert errors["silent"]["body"]["error"]["param"] == "messages[0].content"
    assert errors["silent"]["body"]["error"]["code"] == "missing_required_parameter"


def test_anthropic_batch_fails_only_the_requests_with_a_bad_role_or_empty_content(
    emulator: EmulatorProcess,
) -> None:
    client = anthropic.Anthropic(base_url=emulator.anthropic_base_url, api_key="sk-ant-test", max_retries=0)

    def request(custom_id: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "custom_id": custom_id,
            "params": {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": messages},
        }

    created = client.messages.batches.create(
        requests=[  # type: ignore[arg-type]
            request("wizard", [{"role": "wizard", "content": "cast a spell"}]),
            request("empty", [{"role": "user", "content": ""}]),
            request("fine", [{"role": "user", "content": "hello"}]),
        ]
    )
    ended = wait_until(
        lambda: client.messages.batches.retrieve(created.id), lambda b: b.processing_status == "ended"
    )
    assert (ended.request_counts.succeeded, ended.request_counts.errored) == (1, 2)
    results = {item.custom_id: item.result for item in client.messages.batches.results(created.id)}
    assert results["fine"].type == "succeeded"
    for name in ("wizard", "empty"):
        assert results[name].type == "errored"
        assert results[name].error.error.type == "invalid_request_error"  # type: ignore[union-attr]
    assert "role" in results["wizard"].error.error.message  # type: ignore[union-attr]
    assert "non-empty content" in results["empty"].error.error.message  # type: ignore[union-attr]
