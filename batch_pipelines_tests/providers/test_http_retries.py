"""The provider HTTP layer against the emulator: transient errors retried, permanent ones raised at once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from batch_pipelines import BatchManager, BatchRequest, OpenAIProvider
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine.errors import ProviderError
from batch_pipelines.providers.http import ProviderHTTP

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http(emulator: EmulatorProcess) -> AsyncIterator[ProviderHTTP]:
    client = ProviderHTTP(
        "openai",
        emulator.openai_base_url,
        {"Authorization": "Bearer sk-test"},
        max_attempts=3,
        initial_wait_s=0.01,
        max_wait_s=0.05,
    )
    yield client
    await client.aclose()


@pytest.fixture
def calls(emulator: EmulatorProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{emulator.url}/_emulator") as admin:
        yield admin


def _chat_calls(admin: httpx.Client) -> int:
    return int(admin.get("/stats").json()["requests_by_endpoint"].get("chat.completions", 0))


def _chat(text: str) -> dict[str, object]:
    return {"json": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}}


async def test_rate_limit_is_retried_after_the_servers_delay(http: ProviderHTTP, calls: httpx.Client) -> None:
    answer = await http.request_json("POST", "/chat/completions", **_chat("hi [[emulator:rate_limited:1]]"))
    assert answer["choices"][0]["message"]["content"]
    assert _chat_calls(calls) == 2


async def test_server_errors_are_retried_with_backoff(http: ProviderHTTP, calls: httpx.Client) -> None:
    answer = await http.request_json("POST", "/chat/completions", **_chat("hi [[emulator:server_error:2]]"))
    assert answer["choices"]
    assert _chat_calls(calls) == 3


async def test_attempts_are_bounded(http: ProviderHTTP, calls: httpx.Client) -> None:
    with pytest.raises(ProviderError) as raised:
        await http.request_json("POST", "/chat/completions", **_chat("hi [[emulator:server_error:10]]"))
    assert raised.value.retryable and raised.value.status_code == 500
    assert _chat_calls(calls) == 3


async def test_permanent_errors_raise_at_once_with_the_providers_message(
    http: ProviderHTTP, calls: httpx.Client
) -> None:
    with pytest.raises(ProviderError) as raised:
        await http.request_json("POST", "/chat/completions", **_chat("hi [[emulator:invalid_request]]"))
    assert raised.value.error_type == "invalid_request" and not raised.value.retryable
    assert "invalid_request marker" in str(raised.value)
    assert _chat_calls(calls) == 1


async def test_bad_key_is_an_authentication_error_that_never_shows_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with EmulatorProcess(time_scale=0.02, api_keys=["sk-the-right-one"]) as emulator:
        provider = OpenAIProvider(
            "gpt-4o-mini", base_url=emulator.openai_base_url, api_key="sk-wrong-secret-42"
        )
        manager = BatchManager(provider)
        with pytest.raises(ProviderError) as raised:
            await manager.submit([BatchRequest(id="a", messages=[{"role": "user", "content": "x"}])])
        await provider.aclose()
    assert raised.value.error_type == "authentication" and raised.value.status_code == 401
    assert "sk-wrong-secret-42" not in str(raised.value) and "sk-wrong-secret-42" not in repr(raised.value)
    assert "sk-wrong-secret-42" not in caplog.text


async def test_a_non_idempotent_call_is_resent_only_when_the_server_did_nothing(
    http: ProviderHTTP, calls: httpx.Client
) -> None:
    with pytest.raises(ProviderError) as raised:
        await http.request_json(
            "POST", "/chat/completions", idempotent=False, **_chat("hi [[emulator:server_error:1]]")
        )
    assert raised.value.status_code == 500 and not raised.value.retryable
    assert _chat_calls(calls) == 1
    answer = await http.request_json(
        "POST", "/chat/completions", idempotent=False, **_chat("hi [[emulator:rate_limited:1]]")
    )
    assert answer["choices"] and _chat_calls(calls) == 3
