"""The local provider's background worker: a process that embeds queued batches, one pass at a time.

Started detached by the provider (``python -m batch_pipelines.providers.local ROOT --lock-fd N``), so it
outlives the Dagster run or sensor tick that created the batch. One worker per batches folder: it holds
an exclusive lock on ``worker.lock`` that its starter took and handed over. It keeps loaded models
between batches and exits after ``idle_exit_s`` without work, or when ``stop`` appears in the folder.
Vectors go to Parquet parts (vector_parts.py), errors to ``errors.jsonl``. A batch left running by a
dead worker is resumed: items already in a part or the errors file are not run again.
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
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa

from batch_pipelines.providers.local.batch_table import BatchTable, LocalBatch
from batch_pipelines.providers.local.batching import AdaptiveBatcher, PassOutcome
from batch_pipelines.providers.local.encoder import SentenceEncoder, TokenIds
from batch_pipelines.providers.local.output_lines import ERRORS_FILE, error_line, input_items
from batch_pipelines.providers.local.vector_parts import PartWriter, SealedPart, written_so_far

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


EncoderKey = tuple[str, str | None, str | None]  # model folder, device, precision

WINDOW_ITEMS_CPU = 4_096  # texts tokenized (and sorted by length) together
WINDOW_ITEMS_GPU = 32_768
PART_ITEMS = 16_384  # a part is written once this many items are finished (the part_items option) ...
PART_EVERY_S = 1.0  # ... or this long after the last one, so progress and cancellation show up
CPU_MAX_BATCH_SIZE = 128


class Worker:
    """Embeds batches with models it loads once and keeps (``encoders`` may hand it loaded ones)."""

    def __init__(self, table: BatchTable, encoders: dict[EncoderKey, SentenceEncoder] | None = None) -> None:
        self.table = table
        self._encoders: dict[EncoderKey, SentenceEncoder] = dict(encoders or {})
        self._budgets: dict[EncoderKey, int] = {}  # what out-of-memory errors taught us

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
            key = encoder_key(batch)
            encoder = self._encoders.get(key)
            if encoder is None:
                encoder = self._encoders[key] = SentenceEncoder(Path(key[0]), key[1], key[2])
        except Exception as error:  # an unreadable model or input fails this batch, not the worker
            logger.exception("batch %s failed", batch.id)
            self.table.finish(
                batch.id, error_code="model_not_found", error_message=f"{type(error).__name__}: {error}"
            )
            return
        written, written_tokens = written_so_far(folder)
        failed_before = _error_ids(folder)
        done = written | failed_before
        counts = {"completed": len(written), "failed": len(failed_before), "input_tokens": written_tokens}
        with (folder / ERRORS_FILE).open("ab") as errors:
            for custom_id, problem in invalid:
                if custom_id not in done:
                    errors.write(error_line(custom_id, problem, code="invalid_request"))
                    counts["failed"] += 1
            todo = [(custom_id, text) for custom_id, text in items if custom_id not in done]
            try:
                self._embed(batch, encoder, key, todo, PartWriter(folder, encoder.dimensions), errors, counts)
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
        key: EncoderKey,
        todo: list[tuple[str, str]],
        parts: PartWriter,
        errors: IO[bytes],
        counts: dict[str, int],
    ) -> None:
        """Run the passes (tokenizing and padding on threads ahead of the forward passes) and write
        finished items to parts. Stops early when the batch is cancelled."""
        ids = pa.array([custom_id for custom_id, _text in todo], pa.string())
        texts = [text for _custom_id, text in todo]
        budget = int(batch.options.get("token_budget") or encoder.initial_token_budget())
        budget = min(budget, self._budgets.get(key, budget))
        default_items = budget if encoder.on_gpu else CPU_MAX_BATCH_SIZE  # a GPU pass: what the budget allows
        batcher = AdaptiveBatcher(
            encoder.embed,
            prepare=encoder.collate,
            token_budget=budget,
            max_batch_size=int(batch.options.get("max_batch_size") or default_items),
            sort_by_length=bool(batch.options.get("sort_by_length", True)),
            release_memory=encoder.release_memory,
        )
        if not todo:
            self._publish(batch, parts, None, errors, counts)
            return
        part_items = int(batch.options.get("part_items") or PART_ITEMS)
        published_at = time.monotonic()
        try:
            # Parts are written on a thread while the next passes run; a part's progress (and the
            # cancellation check it brings) is recorded once it is durable.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="write-parts") as writer:
                previous: Future[bool] | None = None
                for start, tokens, outcome in _windows(encoder, batcher, texts):
                    positions = np.asarray(outcome.indices, dtype=np.int64)
                    if outcome.vectors is not None:
                        vectors = np.asarray(outcome.vectors, dtype=np.float32)
                        parts.add(ids.take(positions + start), vectors, tokens.lengths[positions])
                    else:
                        for position in positions + start:
                            errors.write(
                                error_line(todo[position][0], outcome.error or "", code="server_error")
                            )
                        counts["failed"] += len(positions)
                    if parts.pending >= part_items or time.monotonic() - published_at >= PART_EVERY_S:
                        published_at = time.monotonic()
                        if previous is not None and previous.result():
                            return  # cancelled: what is written stays, the rest is reported as not run
                        previous = writer.submit(self._publish, batch, parts, parts.seal(), errors, counts)
                if previous is not None:
                    previous.result()
            self._publish(batch, parts, parts.seal(), errors, counts)
        finally:
            if batcher.out_of_memory_events:
                self._budgets[key] = batcher.token_budget
                logger.warning(
                    "batch %s: out of memory %d time(s); token budget now %d",
                    batch.id,
                    batcher.out_of_memory_events,
                    batcher.token_budget,
                )

    def _publish(
        self,
        batch: LocalBatch,
        parts: PartWriter,
        sealed: SealedPart | None,
        errors: IO[bytes],
        counts: dict[str, int],
    ) -> bool:
        """Make what is finished durable and visible; True when cancellation was asked for meanwhile."""
        items, tokens = parts.write(sealed)
        errors.flush()
        counts["completed"] += items
        counts["input_tokens"] += tokens
        return self.table.record_progress(batch.id, **counts)


def _windows(
    encoder: SentenceEncoder, batcher: AdaptiveBatcher, texts: list[str]
) -> Iterator[tuple[int, TokenIds, PassOutcome]]:
    """Every pass outcome with its window's offset and token ids. A window of texts is tokenized on a
    thread while the previous window's passes run."""
    window = WINDOW_ITEMS_GPU if encoder.on_gpu else WINDOW_ITEMS_CPU
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize") as tokenizer:
        upcoming = tokenizer.submit(encoder.tokenize, texts[:window])
        for start in range(0, len(texts), window):
            tokens = upcoming.result()
            following = texts[start + window : start + 2 * window]
            if following:
                upcoming = tokenizer.submit(encoder.tokenize, following)
            for outcome in batcher.run(tokens, tokens.lengths.tolist()):
                yield start, tokens, outcome


def encoder_key(batch: LocalBatch) -> EncoderKey:
    return (batch.model_path, batch.options.get("device"), batch.options.get("precision"))


def _error_ids(folder: Path) -> set[str]:
    """Items whose error line is already written; a line a crash cut short is dropped (its item runs
    again)."""
    path = folder / ERRORS_FILE
    if not path.exists():
        return set()
    content = path.read_bytes()
    if content and not content.endswith(b"\n"):
        content = content[: content.rfind(b"\n") + 1]
        with path.open("r+b") as handle:
            handle.truncate(len(content))
    written: set[str] = set()
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
