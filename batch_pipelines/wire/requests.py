"""The values a request and its answer travel as, shared by the engine and the provider clients.

This package imports neither the engine nor the providers: both build on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import msgspec
import numpy as np
import numpy.typing as npt

from batch_pipelines.wire.request_checks import check_request_shape

RequestKind = Literal["chat", "embedding"]
Embedding = npt.NDArray[np.float32] | list[float]
# msgspec writes and reads the stored payloads several times faster than json (a million per partition).
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()


class BatchStatus(StrEnum):
    """Where a job stands. Usable in ``match``; ``detail`` on the job carries the provider's own words."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.CANCELLED)


@dataclass(slots=True)
class BatchRequest:
    """One unit of work.

    Chat: ``messages`` (OpenAI-style role/content dicts), optional ``system``, ``max_tokens``,
    ``temperature``; anything else the provider accepts goes in ``params`` and is passed through.
    Embedding: ``input=`` text (``kind`` becomes ``"embedding"`` when only ``input`` is given).
    """

    id: str
    messages: list[dict[str, Any]] | None = None
    input: str | None = None
    kind: RequestKind = "chat"
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_request_shape(self.id, self.messages, self.max_tokens, self.temperature, self.input)
        if self.input is not None and self.messages is None:
            self.kind = "embedding"
        if self.kind == "chat" and not self.messages:
            raise ValueError(f"BatchRequest {self.id!r}: a chat request needs a non-empty 'messages' list")
        if self.kind == "embedding" and self.input is None:
            raise ValueError(f"BatchRequest {self.id!r}: an embedding request needs 'input' text")

    def to_json(self) -> str:
        """A compact JSON form for the store, read back by :meth:`from_json`."""
        payload: dict[str, Any] = {"id": self.id, "kind": self.kind}
        for name in ("messages", "input", "system", "max_tokens", "temperature"):
            value = getattr(self, name)
            if value is not None:
                payload[name] = value
        if self.params:
            payload["params"] = self.params
        return _ENCODER.encode(payload).decode()

    @classmethod
    def from_json(cls, text: str) -> BatchRequest:
        payload = _DECODER.decode(text)
        return cls(
            id=payload["id"],
            messages=payload.get("messages"),
            input=payload.get("input"),
            kind=payload.get("kind", "chat"),
            system=payload.get("system"),
            max_tokens=payload.get("max_tokens"),
            temperature=payload.get("temperature"),
            params=payload.get("params", {}),
        )


@dataclass(slots=True)
class BatchResult:
    """Exactly one per request of a job.

    ``error`` is None on success, else the provider's description; ``error_type`` is the engine's
    classification (see :mod:`batch_pipelines.wire.errors`) and ``retryable`` says whether
    ``BatchManager.retry_failed`` would resubmit it. ``parsed`` holds the validated structured output when
    the job has a response schema; ``embedding`` the vector of an embedding request (a float32 numpy array
    where the provider computed it as one, the local provider; else the list of floats the provider's
    JSON held). ``path`` is how the
    realtime path answered it (``"realtime"``: a call of its own, ``"packed"``: a share of a packed call);
    None for a batch job's results.

    ``input_tokens`` counts every prompt token, cached or not; ``cached_input_tokens`` of them were read
    from the provider's prompt cache and ``cache_write_input_tokens`` written to it (Anthropic's
    ``cache_creation_input_tokens``), each priced at its own rate.
    """

    id: str
    response: str | None = None
    error: str | None = None
    error_type: str | None = None
    retryable: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    parsed: Any = None
    embedding: Embedding | None = None
    attempt: int = 1
    provider_batch_id: str | None = None
    path: str | None = None
    cached_input_tokens: int = 0
    cache_write_input_tokens: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None
