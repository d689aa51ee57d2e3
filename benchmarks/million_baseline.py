"""The baseline of benchmarks/million.py: what a careful user writes with the official openai SDK, json and
pandas — JSONL files of 50,000 lines, one batch each, polling, downloading, one Parquet file.

Each function is one stage, run in its own process by million.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import openai
import pandas as pd
from million_data import MAX_TOKENS, MODEL, SYSTEM_PROMPT

LINES_PER_FILE = 50_000
POLL_PAUSE_S = 0.1
TERMINAL = {"completed", "failed", "expired", "cancelled"}


def _client(state: dict[str, Any]) -> openai.OpenAI:
    return openai.OpenAI(base_url=state["base_url"], api_key=state["api_key"], max_retries=5)


def _folder(state: dict[str, Any]) -> Path:
    folder = Path(state["workdir"]) / "baseline"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def build_stage(state: dict[str, Any]) -> dict[str, Any]:
    frame = pd.read_parquet(state["data_path"], columns=["ticket_id", "text"])
    paths = []
    for start in range(0, len(frame), LINES_PER_FILE):
        part = frame.iloc[start : start + LINES_PER_FILE]
        path = _folder(state) / f"input-{start // LINES_PER_FILE:04d}.jsonl"
        with path.open("w") as handle:
            for ticket_id, text in zip(part["ticket_id"], part["text"], strict=True):
                line = {
                    "custom_id": ticket_id,
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {
                        "model": MODEL,
                        "messages": [
                            {"role": "system", "content": SYSTEM_PROMPT},
                            {"role": "user", "content": text},
                        ],
                        "max_tokens": MAX_TOKENS,
                    },
                }
                handle.write(json.dumps(line) + "\n")
        paths.append(str(path))
    state["baseline_files"] = paths
    return {"files": len(paths)}


def upload_stage(state: dict[str, Any]) -> dict[str, Any]:
    client = _client(state)
    batch_ids = []
    for path in state["baseline_files"]:
        with open(path, "rb") as handle:
            uploaded = client.files.create(file=handle, purpose="batch")
        batch = client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        batch_ids.append(batch.id)
    state["baseline_batches"] = batch_ids
    return {"batches": len(batch_ids)}


def poll_stage(state: dict[str, Any]) -> dict[str, Any]:
    client = _client(state)
    pending = set(state["baseline_batches"])
    polls = 0
    while pending:
        for batch_id in sorted(pending):
            polls += 1
            if client.batches.retrieve(batch_id).status in TERMINAL:
                pending.discard(batch_id)
        if pending:
            time.sleep(POLL_PAUSE_S)
    return {"polls": polls}


def results_stage(state: dict[str, Any]) -> dict[str, Any]:
    client = _client(state)
    rows: list[dict[str, Any]] = []
    for batch_id in state["baseline_batches"]:
        batch = client.batches.retrieve(batch_id)
        if batch.output_file_id is None:
            continue
        for line in client.files.content(batch.output_file_id).text.splitlines():
            record = json.loads(line)
            response = record.get("response") or {}
            body = response.get("body") or {}
            if response.get("status_code") != 200:
                rows.append({"id": record["custom_id"], "response": None, "error": json.dumps(body)})
                continue
            usage = body.get("usage") or {}
            rows.append(
                {
                    "id": record["custom_id"],
                    "response": body["choices"][0]["message"]["content"],
                    "input_tokens": usage.get("prompt_tokens"),
                    "output_tokens": usage.get("completion_tokens"),
                    "error": None,
                }
            )
    frame = pd.DataFrame(rows)
    frame.to_parquet(_folder(state) / "results.parquet")
    return {"result_rows": len(frame)}
