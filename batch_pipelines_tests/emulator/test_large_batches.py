"""Batch-sized files through the official openai SDK: byte-exact uploads, and output files that exist
before any status call says the batch completed."""

from __future__ import annotations

import io
import json

import openai
import pytest

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.emulator.helpers import chat_line, parse_jsonl, upload, wait_until

LINES = 20_000


@pytest.fixture
def client(emulator: EmulatorProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-test", max_retries=0, timeout=120)


def test_a_large_upload_round_trips_byte_exactly(client: openai.OpenAI) -> None:
    # Unicode, escapes and CRLF inside a line: nothing may be re-encoded or split on the way.
    lines = [
        chat_line(f"row-{i}", f'Ticket {i}: caf\u00e9 \u2014 "quoted" \\ \r\n end') for i in range(LINES)
    ]
    content = "".join(
        json.dumps(line, ensure_ascii=i % 2 == 0) + "\n" for i, line in enumerate(lines)
    ).encode()

    uploaded = client.files.create(file=("large.jsonl", io.BytesIO(content)), purpose="batch")

    assert uploaded.bytes == len(content)
    assert uploaded.filename == "large.jsonl"
    assert client.files.content(uploaded.id).read() == content


def test_a_batch_is_not_completed_before_its_output_file_can_be_downloaded(client: openai.OpenAI) -> None:
    file_id = upload(client, [chat_line(f"row-{i}", f"Summarise ticket {i}") for i in range(LINES)])
    batch_id = client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    ).id
    statuses: list[str] = []

    def retrieve() -> openai.types.Batch:
        batch = client.batches.retrieve(batch_id)
        if not statuses or statuses[-1] != batch.status:
            statuses.append(batch.status)
        if batch.status == "completed":
            # The very call that first says completed names an output file that is already whole.
            assert batch.output_file_id is not None
            output = parse_jsonl(client.files.content(batch.output_file_id).text)
            assert len(output) == LINES
            assert {line["custom_id"] for line in output} == {f"row-{i}" for i in range(LINES)}
        return batch

    batch = wait_until(retrieve, lambda b: b.status == "completed", timeout_s=120)

    assert batch.request_counts is not None and batch.request_counts.completed == LINES
    # The output of 20,000 requests is written while status calls keep answering `finalizing`.
    assert statuses[-2:] == ["finalizing", "completed"]
