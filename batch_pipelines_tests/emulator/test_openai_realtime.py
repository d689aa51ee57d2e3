"""The official openai SDK against the emulator's realtime endpoints: the model, limits and faults."""

from __future__ import annotations

import json
import math

import httpx
import jsonschema
import openai
import pytest

from batch_pipelines.emulator.process import EmulatorProcess

MESSAGES = [{"role": "user", "content": "Classify this ticket: my parcel never arrived"}]


@pytest.fixture
def client(emulator: EmulatorProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-test", max_retries=0)


def test_chat_is_deterministic_with_consistent_usage(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    second = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    other = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Something else entirely"}],
    )
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.choices[0].message.content != other.choices[0].message.content
    assert first.usage is not None
    assert first.usage.prompt_tokens == second.usage.prompt_tokens if second.usage else False
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens
    assert first.choices[0].finish_reason == "stop"
    assert first._request_id and first._request_id.startswith("req_")
    truncated = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=2)  # type: ignore[arg-type]
    assert truncated.choices[0].finish_reason == "length"
    assert truncated.usage is not None and truncated.usage.completion_tokens <= 2


def test_json_schema_response_format_yields_a_valid_instance(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["billing", "shipping", "other"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "priority": {"type": "integer", "minimum": 1, "maximum": 5},
            "urgent": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "customer": {
                "type": "object",
                "properties": {"email": {"type": "string", "format": "email"}},
                "required": ["email"],
                "additionalProperties": False,
            },
        },
        "required": ["label", "confidence", "priority", "urgent", "tags", "customer"],
        "additionalProperties": False,
    }
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "ticket", "schema": schema, "strict": True},
        },
    )
    content = completion.choices[0].message.content
    assert content is not None
    jsonschema.validate(json.loads(content), schema)


def test_embeddings_have_the_requested_dimension_and_unit_norm(client: openai.OpenAI) -> None:
    # The SDK asks for base64 by default and decodes it; floats are asked for explicitly.
    packed = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"], dimensions=64)
    floats = client.embeddings.create(
        model="text-embedding-3-small", input=["alpha", "beta"], dimensions=64, encoding_format="float"
    )
    assert [len(item.embedding) for item in packed.data] == [64, 64]
    assert packed.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-6)
    assert math.sqrt(sum(value * value for value in floats.data[0].embedding)) == pytest.approx(1.0, abs=1e-5)
    assert packed.data[0].embedding != packed.data[1].embedding
    assert packed.usage.prompt_tokens > 0
    default = client.embeddings.create(model="text-embedding-3-large", input="x")
    assert len(default.data[0].embedding) == 3072


def test_the_sdk_retries_a_rate_limited_call_using_the_emulators_retry_headers(
    emulator: EmulatorProcess,
) -> None:
    emulator.configure({"rate_limits": {"rpm": 2, "window_s": 1.0}})
    client = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-test", max_retries=5)
    answers = [client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES) for _ in range(4)]  # type: ignore[arg-type]
    assert all(answer.choices[0].message.content for answer in answers)
    stats = emulator.stats()
    assert stats["rate_limited_429"] >= 1
    assert stats["responses_by_status"]["429"] == stats["rate_limited_429"]
    assert stats["responses_by_status"]["200"] == 4  # admin calls are not counted


def test_a_429_carries_openais_headers_and_body(emulator: EmulatorProcess) -> None:
    emulator.configure({"rate_limits": {"rpm": 1, "tpm": 100_000, "window_s": 60}})
    url = f"{emulator.openai_base_url}/chat/completions"
    request = {"model": "gpt-4o-mini", "messages": MESSAGES}
    headers = {"Authorization": "Bearer sk-test"}
    accepted = httpx.post(url, json=request, headers=headers)
    limited = httpx.post(url, json=request, headers=headers)

    assert accepted.status_code == 200
    assert accepted.headers["x-ratelimit-limit-requests"] == "1"
    assert accepted.headers["x-ratelimit-remaining-requests"] == "0"
    assert accepted.headers["x-ratelimit-limit-tokens"] == "100000"
    assert accepted.headers["x-ratelimit-reset-requests"].endswith("s")
    assert limited.status_code == 429
    assert float(limited.headers["retry-after-ms"]) > 1000
    assert int(limited.headers["retry-after"]) >= 1
    error = limited.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests" and error["param"] is None
    assert error["message"].startswith("Rate limit reached for gpt-4o-mini")
    assert "on requests per min (RPM): Limit 1" in error["message"]


def test_a_request_above_the_tpm_limit_is_a_429_that_never_succeeds(emulator: EmulatorProcess) -> None:
    emulator.configure({"rate_limits": {"tpm": 50, "window_s": 1.0}})
    client = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-test", max_retries=1)
    huge = [{"role": "user", "content": "word " * 400}]
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as raised:
            client.chat.completions.create(model="gpt-4o-mini", messages=huge)  # type: ignore[arg-type]
        assert "Request too large for gpt-4o-mini" in raised.value.message
        assert raised.value.code == "rate_limit_exceeded"


def test_injected_faults_are_retried_by_the_sdk_or_surface_with_the_right_class(
    emulator: EmulatorProcess,
) -> None:
    retrying = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-test", max_retries=2)
    transient = [{"role": "user", "content": "flaky [[emulator:server_error:1]]"}]
    assert retrying.chat.completions.create(model="gpt-4o-mini", messages=transient).choices  # type: ignore[arg-type]

    plain = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-test", max_retries=0)
    cases: list[tuple[str, type[Exception]]] = [
        ("[[emulator:server_error]]", openai.InternalServerError),
        ("[[emulator:unavailable]]", openai.InternalServerError),
        ("[[emulator:invalid_request]]", openai.BadRequestError),
        ("[[emulator:drop_connection]]", openai.APIConnectionError),
    ]
    for marker, expected in cases:
        with pytest.raises(expected):
            plain.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": marker}])
    faults = emulator.stats()["faults_injected"]
    assert faults["server_error"] == 2 and faults["drop_connection"] == 1


def test_missing_or_wrong_keys_get_401(emulator: EmulatorProcess) -> None:
    response = httpx.post(
        f"{emulator.openai_base_url}/chat/completions", json={"model": "m", "messages": MESSAGES}
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"
    emulator.configure({"api_keys": ["sk-good"]})
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=emulator.openai_base_url, api_key="sk-bad", max_retries=0
        ).chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,  # type: ignore[arg-type]
        )


def test_bad_bodies_get_400_naming_the_parameter(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    assert raised.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as unknown_format:
        client.embeddings.create(model="m", input="x", encoding_format="hex")  # type: ignore[arg-type]
    assert unknown_format.value.param == "encoding_format"


def test_slow_responses_trip_the_clients_timeout(emulator: EmulatorProcess) -> None:
    emulator.configure({"faults": {"slow_response_s": 150}})  # x 0.02 time scale = 3 s
    impatient = openai.OpenAI(
        base_url=emulator.openai_base_url, api_key="sk-test", max_retries=0, timeout=0.5
    )
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "[[emulator:slow]]"}]
        )


def test_unknown_routes_get_a_provider_shaped_404(emulator: EmulatorProcess) -> None:
    response = httpx.get(f"{emulator.openai_base_url}/nothing-here", headers={"Authorization": "Bearer k"})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Invalid URL (GET /v1/nothing-here)"
