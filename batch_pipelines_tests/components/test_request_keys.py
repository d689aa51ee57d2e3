"""The key pass (`request_keys`) and the requests (`iter_planned`) read a partition column by column;
each request and hash must be the one the row-at-a-time definition gives, or a re-run would resubmit
every item it had answered."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from batch_pipelines.components.requests_for_partition import ParquetRows, iter_planned, request_keys
from batch_pipelines.pipeline import parse_pipeline_spec, spec_version
from batch_pipelines.pipeline.requests import render_messages, request_hash
from batch_pipelines_tests.pipeline.specs import declaration

FRAME = pl.DataFrame(
    {
        "ticket_id": [101, 102, 103, 104],
        "subject": ["Refund", None, "Ünïcode ✓ 🙂", 'quote " and \\ and {braces}'],
        "body": ["line\nbreak\ttab", "", None, "x" * 500],
        "seats": [5, None, 12, 0],
        "score": [1.0, 2.5, None, -0.0],
        "flag": [True, False, None, True],
        "when": [datetime(2026, 11, 1, 8, 30), None, datetime(2026, 1, 2), datetime(2026, 11, 3, 23, 59, 59)],
    }
)

PROMPTS = [
    {"system": "You triage tickets.", "user": "Subject: {subject}\n{body}"},
    {"user": "{subject} / {body}"},
    {"system": "Team {flag} at {when}, use {{json}}", "user": "{seats} seats, score {score}: {subject}"},
    {"system": "Literal {{braces}} only", "user": "No columns at all"},
]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_each_hash_is_the_row_at_a_time_hash(prompt: dict[str, str], tmp_path: Path) -> None:
    spec = parse_pipeline_spec(declaration(prompt=prompt))
    version = spec_version(spec)
    expected = [request_hash(version, render_messages(spec, row)) for row in FRAME.iter_rows(named=True)]
    FRAME.write_parquet(tmp_path / "part.parquet")
    for inputs in (FRAME, ParquetRows(tmp_path / "part.parquet")):
        keys = request_keys(spec, inputs)
        assert keys["id"].to_list() == ["101", "102", "103", "104"]
        assert keys["request_hash"].to_list() == expected
    assert len(set(expected)) == (1 if prompt["user"] == "No columns at all" else len(expected))


@pytest.mark.parametrize("prompt", PROMPTS)
def test_each_request_is_the_row_at_a_time_request(prompt: dict[str, str]) -> None:
    spec = parse_pipeline_spec(declaration(prompt=prompt, params={"max_tokens": 20, "top_p": 0.5}))
    version = spec_version(spec)
    for planned, row in zip(iter_planned(spec, FRAME), FRAME.iter_rows(named=True), strict=True):
        messages = render_messages(spec, row)
        request = planned.request
        assert request.id == str(row["ticket_id"])
        assert request.system == (messages[0]["content"] if len(messages) == 2 else None)
        assert request.messages == [messages[-1]]
        assert (request.max_tokens, request.params) == (20, {"top_p": 0.5})
        assert planned.request_hash == request_hash(version, messages)
