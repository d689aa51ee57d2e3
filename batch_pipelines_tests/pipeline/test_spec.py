from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from batch_pipelines.pipeline import PipelineSpecError, parse_pipeline_spec, spec_version
from batch_pipelines.pipeline.requests import render_messages, request_hash
from batch_pipelines_tests.pipeline.specs import declaration


def test_valid_declaration_has_defaults() -> None:
    spec = parse_pipeline_spec(declaration())
    assert spec.mode == "batch"
    assert spec.schedule.cron == "0 3 * * *"
    assert spec.prompt.columns == ("subject", "body")
    assert spec.source.file_format == "parquet"


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"mode": "realtime", "provider": "bedrock"}, "mode", "needs a provider with a realtime API"),
        ({"mode": "auto"}, "urgent", "'mode: auto' needs 'urgent'"),
        ({"urgent": {"priority_column": "priority", "threshold": 5}}, "urgent", "applies to 'mode: auto'"),
        ({"mode": "auto", "urgent": {"threshold": 5}}, "urgent.priority_column", "Field required"),
        ({"realtime": {"items_per_prompt": 1}}, "realtime.items_per_prompt", "greater than or equal to 2"),
        ({"mode": "turbo"}, "mode", "unknown mode"),
        ({"provider": "acme"}, "provider", "unknown provider"),
        ({"name": "Bad Name"}, "name", "pattern"),
        ({"prompt": {"user": "Hello {row.subject}"}}, "prompt.user", "plain column name"),
        ({"prompt": {"user": "Hello {subject"}}, "prompt.user", "malformed template"),
        ({"schedule": {"cron": "0 27 * * *"}}, "schedule.cron", "hour value 27"),
        ({"schedule": {"timezone": "Mars/Olympus"}}, "schedule.timezone", "unknown timezone"),
        ({"source": {"path": "a.parquet", "sql": "select 1"}}, "source", "exactly one"),
        ({"source": {"path": "data/*.xlsx"}}, "source", "cannot tell the format"),
        (
            {"partitions": {"static": {"column": "region", "keys": ["eu", "../etc"]}}},
            "partitions.static.keys",
            "'..'",
        ),
        (
            {"partitions": {"static": {"column": "region", "keys": ["eu", "eu"]}}},
            "partitions.static.keys",
            "duplicate",
        ),
        ({"partitions": {}}, "partitions", "exactly one of 'daily' or 'static'"),
        ({"response_schema": {"type": "nonsense"}}, "response_schema", "not a valid JSON schema"),
        ({"max_attempts": 0}, "max_attempts", "greater than or equal to 1"),
        ({"colour": "blue"}, "colour", "unknown field"),
    ],
)
def test_bad_declaration_names_the_field(changes: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(PipelineSpecError) as raised:
        parse_pipeline_spec(declaration(**changes), origin="defs/tickets/defs.yaml")
    message = str(raised.value)
    assert f"field '{field}'" in message
    assert fragment in message
    assert "defs/tickets/defs.yaml" in message


def test_missing_required_fields_are_all_named() -> None:
    data = declaration()
    del data["model"], data["id_column"]
    with pytest.raises(PipelineSpecError) as raised:
        parse_pipeline_spec(data)
    assert "field 'model'" in str(raised.value)
    assert "field 'id_column'" in str(raised.value)


def test_spec_version_follows_what_shapes_a_request() -> None:
    base = parse_pipeline_spec(declaration())
    assert spec_version(base) == spec_version(
        parse_pipeline_spec(declaration(schedule={"cron": "0 4 * * *"}))
    )
    for changes in (
        {"model": "gpt-4o"},
        {"params": {"max_tokens": 21}},
        {"prompt": {"user": "Subject: {subject}"}},
        {"response_schema": {"type": "object"}},
    ):
        assert spec_version(parse_pipeline_spec(declaration(**changes))) != spec_version(base), changes


def test_rendering_fills_columns_and_keeps_literal_braces() -> None:
    spec = parse_pipeline_spec(declaration(prompt={"user": "{{json}} {subject}: {body}"}))
    messages = render_messages(spec, {"subject": "Refund", "body": None, "other": 1})
    assert messages == [{"role": "user", "content": "{json} Refund: "}]
    version = spec_version(spec)
    assert request_hash(version, messages) == request_hash(version, list(messages))
    assert request_hash(version, messages) != request_hash(version, [{"role": "user", "content": "x"}])


@pytest.mark.parametrize(
    "content",
    [
        "plain",
        'quotes " and \\ backslash',
        "é ü 中文 🙂",
        "tab\tnew\nline\x00\x1f",
        "\ud800 lone surrogate",
        "",
    ],
)
def test_request_hash_is_unchanged_from_earlier_releases(content: str) -> None:
    """Stored hashes decide what is resubmitted: they must stay the sha256 of the sorted, compact JSON."""
    messages = [{"role": "system", "content": "Triage."}, {"role": "user", "content": content}]
    version = "0123456789abcdef"
    for shape in (messages, [{**messages[1], "name": "extra key"}]):
        encoded = json.dumps({"version": version, "messages": shape}, sort_keys=True, separators=(",", ":"))
        assert request_hash(version, shape) == hashlib.sha256(encoded.encode()).hexdigest()[:32]
