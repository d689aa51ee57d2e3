"""Files and batches the emulator knows, kept in memory and (optionally) mirrored to a state directory.

Layout of the state directory: ``files/<id>.json`` (metadata) + ``files/<id>.data`` (content),
``batches/<id>.json`` (the batch record) + ``batches/<id>.requests.jsonl`` (Anthropic's inline requests).
Every write goes to a temporary name and is renamed into place, so a killed emulator leaves whole files.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    expires_at: int | None = None

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": self.expires_at,
            "status_details": None,
        }


@dataclass
class BatchRequest:
    """One request of a batch: its id, its body, and the raw text markers are looked for in."""

    custom_id: str
    body: dict[str, Any]
    text: str


@dataclass
class BatchRecord:
    """A batch and its planned timeline (real Unix times); the visible status is derived from the plan."""

    id: str
    provider: str  # "openai" | "anthropic"
    created_at: float
    total: int
    validated_at: float
    work_done_at: float
    finalized_at: float
    expires_at: float
    order_seed: str
    endpoint: str = ""
    input_file_id: str = ""
    completion_window: str = "24h"
    metadata: dict[str, str] | None = None
    model: str | None = None
    enqueued_tokens: int = 0
    validation_errors: list[dict[str, Any]] = field(default_factory=list)
    # An OpenAI input file is checked after the create call answers; until then the plan's instants
    # lie at infinity and the batch reads as validating.
    validation_pending: bool = False
    scenario: str | None = None
    cancel_requested_at: float | None = None
    cancel_done_at: float | None = None
    cancel_completed: int = 0
    # Set once the batch reaches a terminal state and its results exist.
    status: str | None = None
    terminal_at: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    results: list[str] | None = None  # Anthropic result lines, in delivery order
    requests: list[BatchRequest] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["requests"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BatchRecord:
        return cls(**data)


class Store:
    def __init__(self, state_dir: Path | None) -> None:
        self.state_dir = state_dir
        self.files: dict[str, StoredFile] = {}
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, BatchRecord] = {}
        if state_dir is not None:
            (state_dir / "files").mkdir(parents=True, exist_ok=True)
            (state_dir / "batches").mkdir(parents=True, exist_ok=True)
            self._load(state_dir)

    # files
    def add_file(
        self, filename: str, purpose: str, content: bytes, expires_after_s: int | None = None
    ) -> StoredFile:
        now = int(time.time())
        stored = StoredFile(
            id=new_id("file-"),
            filename=filename,
            purpose=purpose,
            bytes=len(content),
            created_at=now,
            expires_at=now + expires_after_s if expires_after_s else None,
        )
        self.files[stored.id] = stored
        self.contents[stored.id] = content
        if self.state_dir is not None:
            _write(self.state_dir / "files" / f"{stored.id}.data", content)
            _write(self.state_dir / "files" / f"{stored.id}.json", json.dumps(asdict(stored)).encode())
        return stored

    def delete_file(self, file_id: str) -> None:
        self.files.pop(file_id, None)
        self.contents.pop(file_id, None)
        if self.state_dir is not None:
            for suffix in (".json", ".data"):
                (self.state_dir / "files" / f"{file_id}{suffix}").unlink(missing_ok=True)

    # batches
    def save_batch(self, batch: BatchRecord, with_requests: bool = False) -> None:
        self.batches[batch.id] = batch
        if self.state_dir is None:
            return
        folder = self.state_dir / "batches"
        if with_requests:
            lines = (json.dumps({"custom_id": r.custom_id, "body": r.body}) for r in batch.requests)
            _write(folder / f"{batch.id}.requests.jsonl", "\n".join(lines).encode())
        _write(folder / f"{batch.id}.json", json.dumps(batch.to_json()).encode())

    def delete_batch(self, batch_id: str) -> None:
        self.batches.pop(batch_id, None)
        if self.state_dir is not None:
            for suffix in (".json", ".requests.jsonl"):
                (self.state_dir / "batches" / f"{batch_id}{suffix}").unlink(missing_ok=True)

    def _load(self, state_dir: Path) -> None:
        for meta in (state_dir / "files").glob("*.json"):
            stored = StoredFile(**json.loads(meta.read_text()))
            data = meta.with_suffix(".data")
            if data.exists():
                self.files[stored.id] = stored
                self.contents[stored.id] = data.read_bytes()
        for path in (state_dir / "batches").glob("*.json"):
            batch = BatchRecord.from_json(json.loads(path.read_text()))
            requests_path = path.with_name(f"{batch.id}.requests.jsonl")
            if requests_path.exists():
                for line in requests_path.read_text().splitlines():
                    item = json.loads(line)
                    batch.requests.append(
                        BatchRequest(item["custom_id"], item["body"], json.dumps(item["body"]))
                    )
            self.batches[batch.id] = batch


def _write(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)
