"""The deterministic stand-in "model": the same request always gets the same answer and token counts.

Tokens are counted as ``ceil(len(text) / chars_per_token)`` per piece of text plus a small per-message
overhead, so usage figures are stable and roughly the size a real tokenizer would report.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
import time
from functools import lru_cache
from typing import Any

import numpy as np

from batch_pipelines.emulator.errors import ApiError, invalid
from batch_pipelines.emulator.message_rules import check_anthropic_messages, check_openai_messages
from batch_pipelines.emulator.openai_model_rules import check_model_parameters
from batch_pipelines.emulator.prompt_cache import PromptCache
from batch_pipelines.emulator.schema_instance import instance_for_schema

MESSAGE_OVERHEAD_TOKENS = 3
_VOCABULARY = (
    *("the", "model", "considered", "the", "input", "carefully", "and", "produced", "this", "deterministic"),
    *("emulated", "answer", "with", "enough", "words", "to", "look", "like", "a", "real", "reply", "from"),
    *("a", "language", "model", "about", "the", "given", "prompt"),
)
_EMBEDDING_DIMENSIONS = {"text-embedding-3-large": 3072, "text-embedding-3-small": 1536}


@lru_cache(maxsize=8192)
def count_tokens(text: str, chars_per_token: float = 4.0) -> int:
    return math.ceil(len(text) / chars_per_token) if text else 0


def content_text(content: Any) -> str:
    """The text of a message's content: a string, or a list of parts carrying ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def prompt_text(messages: list[dict[str, Any]], system: Any = None) -> str:
    parts = [content_text(system)] if system else []
    parts.extend(content_text(message.get("content")) for message in messages)
    return "\n".join(parts)


def prompt_tokens(messages: list[dict[str, Any]], chars_per_token: float, system: Any = None) -> int:
    total = count_tokens(content_text(system), chars_per_token) + (MESSAGE_OVERHEAD_TOKENS if system else 0)
    for message in messages:
        total += count_tokens(content_text(message.get("content")), chars_per_token) + MESSAGE_OVERHEAD_TOKENS
    return total + MESSAGE_OVERHEAD_TOKENS


@lru_cache(maxsize=4096)
def _reply_words(prompt: str, model: str, words: int) -> str:
    digest = hashlib.blake2b(f"{model}\0{prompt}".encode(), digest_size=32).digest()
    picked = [_VOCABULARY[digest[index % len(digest)] % len(_VOCABULARY)] for index in range(words)]
    return " ".join(picked)


def reply_text(prompt: str, model: str, tokens: int, chars_per_token: float) -> str:
    """About ``tokens`` tokens of text derived from the prompt (words average ~5 chars + a space)."""
    words = max(1, round(tokens * chars_per_token / 6))
    return _reply_words(prompt, model, words)


def _limited(text: str, max_tokens: int | None, chars_per_token: float) -> tuple[str, bool]:
    if max_tokens is None or count_tokens(text, chars_per_token) <= max_tokens:
        return text, False
    return text[: int(max_tokens * chars_per_token)], True


def _require_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("'messages' must be a non-empty array of message objects.", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise invalid(
                f"Invalid value for 'messages[{index}]': expected an object with a role.", "messages"
            )
    check_openai_messages(messages)
    return messages


def _require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("you must provide a model parameter", param="model")
    return model


def _max_tokens(body: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise invalid(f"Invalid '{name}': expected a positive integer, got {value!r}.", param=name)
            return value
    return None


def _structured_content(response_format: Any, seed_text: str) -> str | None:
    if not isinstance(response_format, dict):
        return None
    if response_format.get("type") == "json_object":
        return json.dumps({"answer": _reply_words(seed_text, "json", 4)})
    if response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        raise invalid("'response_format.json_schema.schema' must be an object.", "response_format")
    try:
        return json.dumps(instance_for_schema(schema, seed_text))
    except (ValueError, KeyError, TypeError) as error:
        raise invalid(f"Invalid schema for response_format: {error}", "response_format") from error


def check_openai_chat(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]], int | None, int]:
    """The model, messages, output-token cap and choice count of a chat request, or the 400 it gets."""
    model = _require_model(body)
    messages = _require_messages(body)
    check_model_parameters(model, body)
    max_tokens = _max_tokens(body, "max_completion_tokens", "max_tokens")
    choices_wanted = body.get("n") or 1
    if not isinstance(choices_wanted, int) or not 1 <= choices_wanted <= 128:
        raise invalid(
            f"Invalid 'n': expected an integer between 1 and 128, got {choices_wanted!r}.", param="n"
        )
    return model, messages, max_tokens, choices_wanted


def openai_chat_completion(
    body: dict[str, Any], chars_per_token: float, reply_tokens: int, cache: PromptCache | None = None
) -> dict[str, Any]:
    model, messages, max_tokens, choices_wanted = check_openai_chat(body)
    prompt = prompt_text(messages)
    input_tokens = prompt_tokens(messages, chars_per_token)
    cached_tokens = cache.openai_cached_tokens(model, messages, input_tokens) if cache else 0
    structured = _structured_content(body.get("response_format"), prompt)
    choices = []
    output_tokens = 0
    for index in range(choices_wanted):
        seed = prompt if index == 0 else f"{prompt}\0{index}"
        text = (
            structured if structured is not None else reply_text(seed, model, reply_tokens, chars_per_token)
        )
        text, truncated = _limited(text, max_tokens, chars_per_token)
        output_tokens += count_tokens(text, chars_per_token)
        choices.append(
            {
                "index": index,
                "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "length" if truncated else "stop",
            }
        )
    return {
        "id": f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_emulator",
    }


def embedding_inputs(body: dict[str, Any]) -> list[str]:
    raw = body.get("input")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise invalid("'input' must be a non-empty string or array.", param="input")
    texts = []
    for item in raw:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, int):  # a single token array
            return [" ".join(str(token) for token in raw)]
        elif isinstance(item, list):
            texts.append(" ".join(str(token) for token in item))
        else:
            raise invalid("'input' items must be strings or token arrays.", param="input")
    return texts


@lru_cache(maxsize=1024)
def embedding_vector(text: str, model: str, dimensions: int) -> np.ndarray:
    """A unit-norm float32 vector seeded by the text: stable across runs and processes (read-only)."""
    seed = int.from_bytes(hashlib.blake2b(f"{model}\0{text}".encode(), digest_size=8).digest(), "big")
    vector = np.random.default_rng(seed).standard_normal(dimensions).astype("<f4")
    vector /= np.linalg.norm(vector)
    vector.flags.writeable = False
    return vector


def check_embeddings(body: dict[str, Any], default_dimensions: int) -> tuple[str, list[str], int, str]:
    """The model, input texts, dimensions and encoding of an embeddings request, or the 400 it gets."""
    model = _require_model(body)
    texts = embedding_inputs(body)
    dimensions = body.get("dimensions") or _EMBEDDING_DIMENSIONS.get(model, default_dimensions)
    if not isinstance(dimensions, int) or dimensions < 1:
        raise invalid(f"Invalid 'dimensions': expected a positive integer, got {dimensions!r}.", "dimensions")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise invalid(
            f"Invalid value for 'encoding_format': {encoding!r}. Supported values are: 'float' and 'base64'.",
            param="encoding_format",
        )
    return model, texts, dimensions, encoding


def openai_embeddings(
    body: dict[str, Any], chars_per_token: float, default_dimensions: int
) -> dict[str, Any]:
    model, texts, dimensions, encoding = check_embeddings(body, default_dimensions)
    data = []
    for index, text in enumerate(texts):
        vector = embedding_vector(text, model, dimensions)
        if encoding == "base64":
            embedding: Any = base64.b64encode(vector.tobytes()).decode()
        else:
            embedding = vector.tolist()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(count_tokens(text, chars_per_token) for text in texts)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def check_anthropic(body: dict[str, Any]) -> tuple[str, int, list[dict[str, Any]]]:
    """The model, max_tokens and messages of a Messages request, or the 400 it gets."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise ApiError(400, "max_tokens: Field required (a positive integer)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: at least one message is required")
    check_anthropic_messages(messages)
    return model, max_tokens, messages


def anthropic_output_format(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON-schema output format asked for: GA `output_config.format`, or the beta `output_format`."""
    config = body.get("output_config")
    candidates = [config.get("format") if isinstance(config, dict) else None, body.get("output_format")]
    for candidate in candidates:
        if isinstance(candidate, dict) and isinstance(candidate.get("schema"), dict):
            return candidate
    return None


def anthropic_message(
    body: dict[str, Any], chars_per_token: float, reply_tokens: int, cache: PromptCache | None = None
) -> dict[str, Any]:
    model, max_tokens, messages = check_anthropic(body)
    system = body.get("system")
    input_tokens = prompt_tokens(messages, chars_per_token, system)
    read, written = cache.anthropic_cache_tokens(model, system, messages, input_tokens) if cache else (0, 0)
    prompt = prompt_text(messages, system)
    structured = None
    output_format = anthropic_output_format(body)
    if output_format is not None:
        structured = json.dumps(instance_for_schema(output_format["schema"], prompt))
    text = structured if structured is not None else reply_text(prompt, model, reply_tokens, chars_per_token)
    text, truncated = _limited(text, max_tokens, chars_per_token)
    return {
        "id": f"msg_{secrets.token_hex(12)}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "max_tokens" if truncated else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens - read - written,
            "output_tokens": count_tokens(text, chars_per_token),
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
        },
    }
