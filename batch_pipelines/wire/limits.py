"""How big one provider batch may be, and a cheap estimate of a request's prompt tokens."""

from __future__ import annotations

from dataclasses import dataclass

from batch_pipelines.wire.requests import BatchRequest

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """Every limit a single provider batch must respect; ``None`` means unlimited.

    ``max_enqueued_tokens`` is the provider's per-model pool of prompt tokens that may be queued at once
    (across all open batches of that model): no single batch exceeds it, and the manager holds back
    further batches until earlier ones finish when the pool is full.
    """

    max_requests: int
    max_bytes: int
    max_enqueued_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.max_requests < 1 or self.max_bytes < 1:
            raise ValueError(f"BatchLimits: max_requests and max_bytes must be positive, got {self}")
        if self.max_enqueued_tokens is not None and self.max_enqueued_tokens < 1:
            raise ValueError(f"BatchLimits: max_enqueued_tokens must be positive, got {self}")


def estimate_tokens(request: BatchRequest) -> int:
    """Prompt tokens, estimated from text length (about four characters a token, plus framing)."""
    if request.kind == "embedding":
        return len(request.input or "") // CHARS_PER_TOKEN + 1
    chars = len(request.system) if request.system else 0
    messages = request.messages or ()
    for message in messages:
        content = message.get("content")
        if content.__class__ is str:
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(
                len(p["text"]) for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
    return chars // CHARS_PER_TOKEN + TOKENS_PER_MESSAGE * (len(messages) + 1)
