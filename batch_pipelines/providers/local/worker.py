"""The local provider's background worker: a process that embeds queued batches, one pass at a time.

Started detached by the provider (``python -m batch_pipelines.providers.local ROOT --lock-fd N``), so it
outlives the Dagster run or sensor tick that created the batch. One worker per batches folder: it holds
an exclusive lock on ``worker.lock`` that its starter took and handed over. It keeps loaded models
between batches and exits after ``idle_exit_s`` without work, or when ``stop`` appears in the folder. A
batch left running by a dead worker is resumed: items whose line is already written are not run again.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from batch_pipelines.providers.local.batch_table import BatchTable, LocalBatch
from batch_pipelines.providers.local.batching import AdaptiveBatcher
from batch_pipelines.providers.local.encoder import SentenceEncoder
from batch_pipelines.providers.local.output_lines import error_line, input_items, success_line

logger = logging.getLogger(__name__)

LOCK_FILE = "worker.lock"
STOP_FILE = "stop"
IDLE_POLL_S = 0.1


def start_worker(root: Path, *, idle_exit_s: float, log: Path) -> bool:
    """Start a detached worker for ``root`` unless one holds its lock; True when one was started.

    The lock is taken here and handed to the child, so two starters never both start one.
    """
    lock = (root / LOCK_FILE).open("a+")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        (root / STOP_FILE).unlink(missing_ok=True)
        command = [sys.executable, "-m", "batch_pipelines.providers.local", str(root)]
        command += ["--lock-fd", str(lock.fileno()), "--idle-exit-s", str(idle_exit_s)]
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        with log.open("ab") as log_file:
            subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                env=environment,
                pass_fds=(lock.fileno(),),
                start_new_session=True,  # outlives the Dagster run or sensor tick that started it
            )
        return True
    finally:
        lock.close()  # the child's copy keeps the lock


def lock_is_free(root: Path) -> bool:
    """True when no worker holds ``root``'s lock (and so none is alive)."""
    with (root / LOCK_FILE).open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


class Worker:
    def __init__(self, table: BatchTable) -> None:
        self.table = table
        self._encoders: dict[tuple[str, str | None], SentenceEncoder] = {}
        self._budgets: dict[tuple[str, str | None], int] = {}  # what out-of-memory errors taught us

    def serve(self, idle_exit_s: float) -> None:
        self.table.requeue_interrupted()
        idle_since = time.monotonic()
        while not (self.table.root / STOP_FILE).exists():
            batch = self.table.claim_next()
            if batch is not None:
                self.run(batch)
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > idle_exit_s:
                return
            else:
                time.sleep(IDLE_POLL_S)

    def run(self, batch: LocalBatch) -> None:
        folder = self.table.folder(batch.id)
        try:
            items, invalid = input_items((folder / "input.jsonl").read_bytes())
            key = (batch.model_path, batch.options.get("device"))
            encoder = self._encoders.get(key)
            if encoder is None:
                encoder = self._encoders[key] = SentenceEncoder(Path(batch.model_path), key[1])
        except Exception as error:  # an unreadable model or input fails this batch, not the worker
            logger.exception("batch %s failed", batch.id)
            self.table.finish(
                batch.id, error_code="model_not_found", error_message=f"{type(error).__name__}: {error}"
            )
            return
        done = _written_ids(folder)
        counts = {"completed": 0, "failed": 0, "input_tokens": 0}
        with (folder / "output.jsonl").open("ab") as output, (folder / "errors.jsonl").open("ab") as errors:
            for custom_id, problem in invalid:
                if custom_id not in done:
                    errors.write(error_line(custom_id, problem, code="invalid_request"))
            counts["failed"] = len(invalid)
            todo = [(custom_id, text) for custom_id, text in items if custom_id not in done]
            counts["completed"] = len(items) - len(todo)
            try:
                self._embed(batch, encoder, key, todo, output, errors, counts)
            except Exception as error:  # the items not written yet come back as retryable failures
                logger.exception("batch %s failed", batch.id)
                message = f"{type(error).__name__}: {error}"
                self.table.finish(batch.id, error_code="server_error", error_message=message)
                return
        self.table.finish(batch.id)

    def _embed(
        self,
        batch: LocalBatch,
        encoder: SentenceEncoder,
        key: tuple[str, str | None],
        todo: list[tuple[str, str]],
        output: IO[bytes],
        errors: IO[bytes],
        counts: dict[str, int],
    ) -> None:
        texts = [text for _custom_id, text in todo]
        lengths = encoder.token_counts(texts) if texts else []
        budget = batch.options.get("token_budget") or encoder.initial_token_budget()
        batcher = AdaptiveBatcher(
            encoder.encode,
            token_budget=min(int(budget), self._budgets.get(key, int(budget))),
            max_batch_size=int(batch.options.get("max_batch_size") or 128),
            sort_by_length=bool(batch.options.get("sort_by_length", True)),
            release_memory=encoder.release_memory,
        )
        for outcome in batcher.run(texts, lengths):
            for position, index in enumerate(outcome.indices):
                custom_id, tokens = todo[index][0], lengths[index]
                if outcome.vectors is not None:
                    output.write(success_line(custom_id, batch.model, outcome.vectors[position], tokens))
                    counts["completed"] += 1
                    counts["input_tokens"] += tokens
                else:
                    errors.write(error_line(custom_id, outcome.error or "", code="server_error"))
                    counts["failed"] += 1
            output.flush()
            errors.flush()
            if self.table.record_progress(batch.id, **counts):
                break  # cancelled: what is written stays, the rest is reported as not run
        if batcher.out_of_memory_events:
            self._budgets[key] = batcher.token_budget
            logger.warning(
                "batch %s: out of memory %d time(s); token budget now %d",
                batch.id,
                batcher.out_of_memory_events,
                batcher.token_budget,
            )


def _written_ids(folder: Path) -> set[str]:
    """Items whose line is already written; a line a crash cut short is dropped (its item runs again)."""
    written: set[str] = set()
    for name in ("output.jsonl", "errors.jsonl"):
        path = folder / name
        if not path.exists():
            continue
        content = path.read_bytes()
        if content and not content.endswith(b"\n"):
            content = content[: content.rfind(b"\n") + 1]
            with path.open("r+b") as handle:
                handle.truncate(len(content))
        for line in content.splitlines():
            record: Any = json.loads(line)
            written.add(str(record.get("custom_id")))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Embed the local provider's queued batches.")
    parser.add_argument("root", type=Path)
    parser.add_argument("--lock-fd", type=int, required=True, help="the folder's lock, taken by the starter")
    parser.add_argument("--idle-exit-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with os.fdopen(args.lock_fd, "a+") as lock:  # held until this process ends
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        Worker(BatchTable(args.root)).serve(args.idle_exit_s)
    return 0
