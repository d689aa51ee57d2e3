"""The work queue on Amazon SQS, with the same interface as the embedded ``WorkQueue``.

SQS delivers the items: a receive is a lease (the visibility timeout), a delete is the ack, a changed
visibility is a delayed retry, and the queue's redrive policy moves an item received ``max_attempts``
times to its dead-letter queue. Results and dead letters are written to a SQL ledger (SQLite or
PostgreSQL by URL, the realtime queue's own result tables) before the message is deleted, so a worker
that dies between the two leaves an item whose redelivery is acked without calling the provider again.

Differences from the embedded queue, all from SQS itself: no priorities (put urgent items on a queue of
their own), ``release`` cannot undo a receive (the delivery counts as an attempt), and counts of pending
and leased items are SQS's approximate numbers.

    queue = SqsWorkQueue.create(client, "tickets-2026-11-22", ledger_url="postgresql://…")
    await queue.initialize()
    summary = await process_realtime(requests, provider_client=…, limiter=…, queue=queue, …)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
import boto3
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from batch_pipelines.engine.models import BatchRequest, BatchResult
from batch_pipelines.realtime import queue_tables as tables
from batch_pipelines.realtime.queue import (
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_VISIBILITY_TIMEOUT_S,
    DeadLetter,
    FinishShortcuts,
    Lease,
    Outcome,
    QueueCounts,
    QueueItem,
)
from batch_pipelines.realtime.queue_tables import DEAD, DONE, PENDING

T = TypeVar("T")
SEND_BATCH = 10  # SQS's limit per SendMessageBatch / ReceiveMessage
MAX_VISIBILITY_S = 43_200

_metadata = sa.MetaData()
enqueued = sa.Table(
    "rt_sqs_enqueued",
    _metadata,
    sa.Column("queue", sa.String(200), primary_key=True),
    sa.Column("item_id", sa.String(200), primary_key=True),
)


class SqsWorkQueue(FinishShortcuts):
    """Items on the SQS queue at ``queue_url``; results in the SQL ledger at ``ledger_url``.

    ``dead_letter_queue_url`` is the queue the redrive policy moves exhausted items to; its messages are
    recorded as dead letters (``lease_expired``) whenever counts or dead letters are read.
    """

    def __init__(
        self,
        queue_url: str,
        *,
        ledger_url: str,
        dead_letter_queue_url: str | None = None,
        client: Any = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"SqsWorkQueue max_attempts must be at least 1, got {max_attempts}")
        self.queue_url = queue_url
        self.dead_letter_queue_url = dead_letter_queue_url
        self.name = queue_url.rstrip("/").rsplit("/", 1)[-1]
        self.ledger_url = ledger_url
        self.max_attempts = max_attempts
        self.visibility_timeout_s = visibility_timeout_s
        self._client = client or boto3.client("sqs")
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    @classmethod
    def create(
        cls,
        client: Any,
        name: str,
        *,
        ledger_url: str,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S,
    ) -> SqsWorkQueue:
        """Create (or find) ``name`` and ``name-dead`` with the redrive policy between them."""
        dead_url = client.create_queue(QueueName=f"{name}-dead")["QueueUrl"]
        dead_arn = client.get_queue_attributes(QueueUrl=dead_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = {"deadLetterTargetArn": dead_arn, "maxReceiveCount": str(max_attempts)}
        attributes = {
            "VisibilityTimeout": str(int(max(1, min(visibility_timeout_s, MAX_VISIBILITY_S)))),
            "RedrivePolicy": json.dumps(redrive),
        }
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        return cls(
            url,
            ledger_url=ledger_url,
            dead_letter_queue_url=dead_url,
            client=client,
            max_attempts=max_attempts,
            visibility_timeout_s=visibility_timeout_s,
        )

    def __repr__(self) -> str:
        return f"SqsWorkQueue({self.queue_url!r})"

    async def initialize(self) -> None:
        if self._engine is None:
            await anyio.to_thread.run_sync(self._create)

    def _create(self) -> None:
        url = sa.make_url(self.ledger_url)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        engine = sa.create_engine(url, pool_pre_ping=True)
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('rt_sqs_ledger'))"))
            for table in (tables.results, tables.dead_letters, enqueued):
                table.create(conn, checkfirst=True)
            tables.add_missing_columns(conn)
        self._engine = engine

    async def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- writing work ---------------------------------------------------------------------------------

    async def enqueue(self, work: Iterable[BatchRequest | QueueItem]) -> int:
        """Send items never enqueued on this queue before (by request id); returns how many were new."""
        queued = [item if isinstance(item, QueueItem) else QueueItem(item) for item in work]
        return await self._run(self._enqueue, queued)

    def _enqueue(self, queued: Sequence[QueueItem]) -> int:
        fresh: list[QueueItem] = []
        with self._begin() as conn:
            for item in queued:
                row = {"queue": self.name, "item_id": item.request.id}
                if conn.execute(_insert_if_absent(conn, enqueued).returning(enqueued.c.item_id), row).first():
                    fresh.append(item)
        for start in range(0, len(fresh), SEND_BATCH):
            entries = [
                {"Id": str(index), "MessageBody": json.dumps({"request": item.request.to_json()})}
                for index, item in enumerate(fresh[start : start + SEND_BATCH])
            ]
            answer = self._client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            if answer.get("Failed"):
                raise RuntimeError(f"SQS refused messages on {self.queue_url}: {answer['Failed']}")
        return len(fresh)

    # -- leasing --------------------------------------------------------------------------------------

    async def lease(self, owner: str, limit: int = 1) -> list[Lease]:
        """Up to ``limit`` items (SQS receives at most 10 per call; ``owner`` is not needed by SQS)."""
        return await self._run(self._lease, limit)

    def _lease(self, limit: int) -> list[Lease]:
        answer = self._client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(limit, SEND_BATCH)),
            VisibilityTimeout=int(max(1, min(self.visibility_timeout_s, MAX_VISIBILITY_S))),
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
            WaitTimeSeconds=0,
        )
        received = [
            (message, BatchRequest.from_json(json.loads(message["Body"])["request"]))
            for message in answer.get("Messages", [])
        ]
        answered = self._with_result([request.id for _, request in received])
        leases: list[Lease] = []
        stale: list[str] = []  # answered by a worker that died before deleting the message
        for message, request in received:
            if request.id in answered:
                stale.append(message["ReceiptHandle"])
                continue
            attempt = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            leases.append(Lease(request.id, request, 0, attempt, message["ReceiptHandle"]))
        self._delete(stale)
        return leases

    async def next_wakeup(self) -> float | None:
        """0 when items are waiting, a short poll interval while some are leased, None when none is open."""
        counts = await self.counts()
        if counts.pending:
            return 0.0
        return 0.5 if counts.leased else None

    # -- finishing ------------------------------------------------------------------------------------

    async def finish(self, outcomes: Sequence[Outcome]) -> list[str]:
        """As ``WorkQueue.finish``: results are written to the ledger before their messages are deleted."""
        if not outcomes:
            return []
        return await self._run(self._finish, outcomes)

    def _finish(self, outcomes: Sequence[Outcome]) -> list[str]:
        # Grouped like the SQLite queue: one ledger statement per kind of row, SQS batch calls of 10.
        now = time.time()
        states: list[str] = []
        delayed: list[tuple[str, int]] = []
        written: list[dict[str, Any]] = []
        buried: list[dict[str, Any]] = []
        acked: list[str] = []
        for outcome in outcomes:
            lease, result = outcome.lease, outcome.result
            if outcome.disposition == "retry" and lease.attempt < self.max_attempts:
                delayed.append((lease.token, int(max(0, min(outcome.delay_s, MAX_VISIBILITY_S)))))
                states.append(PENDING)
                continue
            written.append(tables.result_row(self.name, result, now))
            if outcome.disposition == "done":
                states.append(DONE)
            else:
                buried.append(
                    self._dead_row(lease.item_id, lease.attempt, lease.request.to_json(), result, now)
                )
                states.append(DEAD)
            acked.append(lease.token)
        self._change_visibility(delayed)
        if written or buried:
            with self._begin() as conn:
                if written:
                    conn.execute(_insert_if_absent(conn, tables.results), written)
                if buried:
                    conn.execute(_insert_if_absent(conn, tables.dead_letters), buried)
        self._delete(acked)  # after the ledger's commit: a crash in between redelivers an answered item
        return states

    async def release(self, leases: Iterable[Lease]) -> None:
        """Make the items visible again now (SQS still counts the receive as an attempt)."""
        held = [(lease.token, 0) for lease in leases]
        if held:
            await self._run(self._change_visibility, held)

    # -- reading --------------------------------------------------------------------------------------

    async def counts(self) -> QueueCounts:
        return await self._run(self._counts)

    def _counts(self) -> QueueCounts:
        self._absorb_redriven()
        attributes = self._client.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        with self._begin() as conn:
            done = conn.execute(_count(tables.results, self.name)).scalar_one()
            dead = conn.execute(_count(tables.dead_letters, self.name)).scalar_one()
        return QueueCounts(
            pending=int(attributes["ApproximateNumberOfMessages"]),
            leased=int(attributes["ApproximateNumberOfMessagesNotVisible"]),
            done=int(done) - int(dead),
            dead=int(dead),
        )

    async def depth(self) -> int:
        """Items waiting or in flight (SQS's approximate counts): what a scaling sensor reads."""
        counts = await self.counts()
        return counts.open

    async def results(self) -> list[BatchResult]:
        return await self._run(self._results)

    def _results(self) -> list[BatchResult]:
        query = (
            sa.select(tables.results)
            .where(tables.results.c.queue == self.name)
            .order_by(tables.results.c.written_at, tables.results.c.item_id)
        )
        with self._begin() as conn:
            return [tables.result_from_row(row) for row in conn.execute(query).mappings()]

    async def dead_letters(self) -> list[DeadLetter]:
        return await self._run(self._dead_letters)

    def _dead_letters(self) -> list[DeadLetter]:
        self._absorb_redriven()
        dead = tables.dead_letters.c
        query = sa.select(tables.dead_letters).where(dead.queue == self.name).order_by(dead.dead_at)
        with self._begin() as conn:
            return [
                DeadLetter(
                    row["item_id"],
                    row["attempts"],
                    row["error"],
                    row["error_type"],
                    BatchRequest.from_json(row["payload"]),
                )
                for row in conn.execute(query).mappings()
            ]

    # -- plumbing -------------------------------------------------------------------------------------

    def _absorb_redriven(self) -> None:
        """Record the items SQS moved to the dead-letter queue (received too often) as dead letters."""
        if self.dead_letter_queue_url is None:
            return
        while True:
            answer = self._client.receive_message(
                QueueUrl=self.dead_letter_queue_url,
                MaxNumberOfMessages=SEND_BATCH,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
                WaitTimeSeconds=0,
            )
            messages = answer.get("Messages", [])
            if not messages:
                return
            now = time.time()
            written: list[dict[str, Any]] = []
            buried: list[dict[str, Any]] = []
            for message in messages:
                request = BatchRequest.from_json(json.loads(message["Body"])["request"])
                message_text = f"delivered {self.max_attempts} times without an answer (lease expired)"
                failure = BatchResult(
                    request.id, error=message_text, error_type="lease_expired", attempt=self.max_attempts
                )
                written.append(tables.result_row(self.name, failure, now))
                buried.append(self._dead_row(request.id, self.max_attempts, request.to_json(), failure, now))
            with self._begin() as conn:
                conn.execute(_insert_if_absent(conn, tables.results), written)
                conn.execute(_insert_if_absent(conn, tables.dead_letters), buried)
            self._delete([message["ReceiptHandle"] for message in messages], self.dead_letter_queue_url)

    def _dead_row(
        self, item_id: str, attempts: int, payload: str, result: BatchResult, now: float
    ) -> dict[str, Any]:
        return {
            "queue": self.name,
            "item_id": item_id,
            "attempts": attempts,
            "error": result.error or "failed without a message",
            "error_type": result.error_type,
            "payload": payload,
            "dead_at": now,
        }

    def _with_result(self, item_ids: Sequence[str]) -> set[str]:
        """Which of ``item_ids`` already have a result in the ledger (one query)."""
        if not item_ids:
            return set()
        results = tables.results.c
        query = sa.select(results.item_id).where(
            results.queue == self.name, results.item_id.in_(list(item_ids))
        )
        with self._begin() as conn:
            return set(conn.execute(query).scalars())

    def _delete(self, receipt_handles: Sequence[str], queue_url: str | None = None) -> None:
        """Delete messages (from the work queue unless ``queue_url`` names another), 10 per call. One that
        fails to delete is delivered again and, having a result, deleted then."""
        for start in range(0, len(receipt_handles), SEND_BATCH):
            chunk = receipt_handles[start : start + SEND_BATCH]
            entries = [{"Id": str(index), "ReceiptHandle": handle} for index, handle in enumerate(chunk)]
            self._client.delete_message_batch(QueueUrl=queue_url or self.queue_url, Entries=entries)

    def _change_visibility(self, changes: Sequence[tuple[str, int]]) -> None:
        """Set messages' visibility timeouts (receipt handle, seconds), 10 per call. One that fails keeps
        its lease's timeout and comes back when it expires."""
        for start in range(0, len(changes), SEND_BATCH):
            entries = [
                {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
                for index, (handle, seconds) in enumerate(changes[start : start + SEND_BATCH])
            ]
            self._client.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(partial(self._locked, func, *args))

    def _locked(self, func: Callable[..., T], *args: Any) -> T:
        with self._lock:
            return func(*args)

    def _begin(self) -> Any:
        if self._engine is None:
            raise RuntimeError("SqsWorkQueue used before 'await queue.initialize()'")
        return self._engine.begin()


def _count(table: sa.Table, queue: str) -> Any:
    return sa.select(sa.func.count()).select_from(table).where(table.c.queue == queue)


def _insert_if_absent(conn: Connection, table: sa.Table) -> Any:
    keys = [column.name for column in table.primary_key.columns]
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)
