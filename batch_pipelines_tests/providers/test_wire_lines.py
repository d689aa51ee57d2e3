"""Rendering input lines and parsing result lines, in the shapes PROVIDERS.md documents."""

import json

import pytest

from batch_pipelines.engine.models import BatchRequest
from batch_pipelines.providers import AnthropicProvider, OpenAIProvider, make_provider


@pytest.fixture
def openai() -> OpenAIProvider:
    return OpenAIProvider("gpt-4o-mini", base_url="http://127.0.0.1:9/v1", api_key="sk-secret-value")


@pytest.fixture
def anthropic() -> AnthropicProvider:
    return AnthropicProvider("claude-haiku-4-5", base_url="http://127.0.0.1:9", api_key="sk-ant-secret")


def test_openai_chat_line(openai: OpenAIProvider) -> None:
    request = BatchRequest(
        id="a", messages=[{"role": "user", "content": "hi"}], system="be brief", max_tokens=5
    )
    line = json.loads(openai.render_line(request, {"type": "object"}))
    assert line["custom_id"] == "a" and line["method"] == "POST" and line["url"] == "/v1/chat/completions"
    assert line["body"]["messages"][0] == {"role": "system", "content": "be brief"}
    assert line["body"]["max_tokens"] == 5
    assert line["body"]["response_format"]["json_schema"]["schema"] == {"type": "object"}


def test_openai_embedding_line(openai: OpenAIProvider) -> None:
    line = json.loads(openai.render_line(BatchRequest(id="e", input="some text"), None))
    assert line["url"] == "/v1/embeddings" and line["body"]["input"] == "some text"


def test_openai_success_error_and_expired_lines(openai: OpenAIProvider) -> None:
    ok = openai.parse_result_line(
        json.dumps(
            {
                "id": "batch_req_1",
                "custom_id": "a",
                "error": None,
                "response": {
                    "status_code": 200,
                    "request_id": "req_1",
                    "body": {
                        "choices": [{"message": {"role": "assistant", "content": "hello"}}],
                        "usage": {"prompt_tokens": 7, "completion_tokens": 2},
                    },
                },
            }
        ).encode()
    )
    assert (ok.id, ok.response, ok.input_tokens, ok.output_tokens, ok.error) == ("a", "hello", 7, 2, None)
    bad = openai.parse_result_line(
        json.dumps(
            {
                "custom_id": "b",
                "error": None,
                "response": {
                    "status_code": 400,
                    "body": {
                        "error": {
                            "message": "Invalid 'messages'",
                            "type": "invalid_request_error",
                            "code": None,
                        }
                    },
                },
            }
        ).encode()
    )
    assert (bad.error, bad.error_type, bad.retryable) == ("Invalid 'messages'", "invalid_request", False)
    expired = openai.parse_result_line(
        json.dumps(
            {
                "custom_id": "c",
                "response": None,
                "error": {
                    "code": "batch_expired",
                    "message": "This request could not be executed before the completion window expired.",
                },
            }
        ).encode()
    )
    assert (expired.error_type, expired.retryable) == ("batch_expired", True)


def test_anthropic_lines(anthropic: AnthropicProvider) -> None:
    line = json.loads(
        anthropic.render_line(BatchRequest(id="a", messages=[{"role": "user", "content": "x"}]), None)
    )
    assert line["params"]["max_tokens"] == 1024 and line["params"]["model"] == "claude-haiku-4-5"
    ok = anthropic.parse_result_line(
        json.dumps(
            {
                "custom_id": "a",
                "result": {
                    "type": "succeeded",
                    "message": {
                        "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}],
                        "usage": {"input_tokens": 4, "output_tokens": 2},
                    },
                },
            }
        ).encode()
    )
    assert (ok.response, ok.input_tokens) == ("hi there", 4)
    errored = anthropic.parse_result_line(
        json.dumps(
            {
                "custom_id": "b",
                "result": {
                    "type": "errored",
                    "error": {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                        "request_id": "r",
                    },
                },
            }
        ).encode()
    )
    assert (errored.error, errored.error_type, errored.retryable) == ("Overloaded", "overloaded", True)
    cancelled = anthropic.parse_result_line(b'{"custom_id":"c","result":{"type":"canceled"}}')
    assert (cancelled.error_type, cancelled.retryable) == ("cancelled", True)


def test_anthropic_refuses_bad_ids_and_embeddings(anthropic: AnthropicProvider) -> None:
    with pytest.raises(ValueError, match="'has space'"):
        anthropic.render_line(BatchRequest(id="has space", messages=[{"role": "user", "content": "x"}]), None)
    with pytest.raises(ValueError, match="embeddings"):
        anthropic.render_line(BatchRequest(id="e", input="text"), None)


def test_api_key_not_in_repr(openai: OpenAIProvider, anthropic: AnthropicProvider) -> None:
    assert "secret" not in repr(openai) and "secret" not in repr(anthropic)


def test_make_provider_by_name() -> None:
    provider = make_provider("OpenAI", model="my-vllm-model", base_url="http://127.0.0.1:9/v1", api_key="x")
    assert isinstance(provider, OpenAIProvider) and provider.price is None
    with pytest.raises(ValueError, match="unknown provider 'bedrockish'"):
        make_provider("bedrockish", model="m", base_url=None, api_key="x")
