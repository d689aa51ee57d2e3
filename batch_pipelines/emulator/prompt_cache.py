"""Prompt caching as the providers report it: the prefixes seen per model, and what a request reads.

OpenAI caches automatically: a prompt of at least ``min_tokens`` tokens stores its prefixes in 128-token
steps, and a later prompt of the same model reports the longest stored prefix it starts with as
``usage.prompt_tokens_details.cached_tokens``. Anthropic caches explicitly: the prompt up to a block marked
``cache_control`` (system, then messages, in order) is a breakpoint; the longest breakpoint prefix stored
before is read (``cache_read_input_tokens``) and the rest up to the last breakpoint is written
(``cache_creation_input_tokens``), when that prefix has at least ``min_tokens`` tokens.

Deterministic: the counts depend only on the order requests run (a batch runs its lines in order).
Entries do not expire (a real cache keeps a prefix for minutes after its last use, longer than a test
runs); beyond ``capacity`` the oldest are dropped. ``min_tokens`` of 0 turns caching off.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

OPENAI_STEP_TOKENS = 128


class PromptCache:
    def __init__(self, chars_per_token: float, min_tokens: int = 1024, capacity: int = 200_000) -> None:
        self.chars_per_token = chars_per_token
        self.min_tokens = min_tokens
        self.capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def openai_cached_tokens(self, model: str, messages: list[dict[str, Any]], prompt_tokens: int) -> int:
        if self.min_tokens <= 0 or prompt_tokens < self.min_tokens:
            return 0
        text = "".join(f"{m.get('role')}\0{_text(m.get('content'))}\1" for m in messages)
        longest = min(prompt_tokens, int(len(text) / self.chars_per_token))
        steps = range(self.min_tokens, longest + 1, OPENAI_STEP_TOKENS)
        return self._read_and_store(model, text, list(steps))[0]

    def anthropic_cache_tokens(
        self, model: str, system: Any, messages: list[dict[str, Any]], prompt_tokens: int
    ) -> tuple[int, int]:
        """(tokens read from the cache, tokens written to it)."""
        if self.min_tokens <= 0:
            return 0, 0
        text, breakpoints = "", []
        for piece, marked in _anthropic_pieces(system, messages):
            text += piece
            tokens = min(prompt_tokens, int(len(text) / self.chars_per_token))
            if marked and tokens >= self.min_tokens:
                breakpoints.append(tokens)
        if not breakpoints:
            return 0, 0
        read, last_seen = self._read_and_store(model, text, breakpoints)
        return read, 0 if last_seen else breakpoints[-1] - read

    def _read_and_store(self, model: str, text: str, token_marks: list[int]) -> tuple[int, bool]:
        """The longest stored prefix among those ending at ``token_marks`` and whether the last was
        stored; every one of them is stored afterwards."""
        digest = hashlib.blake2b(model.encode() + b"\0", digest_size=16)
        keys, start = [], 0
        for tokens in token_marks:
            end = int(tokens * self.chars_per_token)
            digest.update(text[start:end].encode())
            keys.append(digest.copy().digest())
            start = end
        with self._lock:
            found = [key in self._seen for key in keys]
            for key in keys:
                self._seen[key] = None
                self._seen.move_to_end(key)
            while len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
        read = max((tokens for tokens, hit in zip(token_marks, found, strict=True) if hit), default=0)
        return read, bool(found) and found[-1]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_block_text(block) for block in content)
    return ""


def _block_text(block: Any) -> str:
    if not isinstance(block, dict):
        return ""
    text = block.get("text")
    if isinstance(text, str):
        return text
    return json.dumps({k: v for k, v in block.items() if k != "cache_control"}, sort_keys=True)


def _anthropic_pieces(system: Any, messages: list[dict[str, Any]]) -> Iterator[tuple[str, bool]]:
    """The prompt in order as (text, ends a cache breakpoint) pieces."""
    for block in system if isinstance(system, list) else [system] if system else []:
        yield (block if isinstance(block, str) else _block_text(block)), _marked(block)
    for message in messages:
        content = message.get("content")
        yield f"{message.get('role')}\0", False
        for block in content if isinstance(content, list) else [content]:
            yield (block if isinstance(block, str) else _block_text(block)), _marked(block)


def _marked(block: Any) -> bool:
    return isinstance(block, dict) and isinstance(block.get("cache_control"), dict)
