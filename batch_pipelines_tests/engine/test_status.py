from batch_pipelines.engine.models import BatchStatus
from batch_pipelines.engine.records import BatchRecord, JobRecord, ResultCounts
from batch_pipelines.engine.status import progress, summarize


def _job(**kwargs: object) -> JobRecord:
    values: dict[str, object] = {
        "id": "j",
        "provider": "openai",
        "model": "m",
        "kind": "chat",
        "created_at": 0.0,
        "prepared": True,
        "total": 10,
    }
    values.update(kwargs)
    return JobRecord(**values)  # type: ignore[arg-type]


def _batch(chunk: int, phase: BatchStatus, detail: str, *, ended: bool, **kwargs: object) -> BatchRecord:
    record = BatchRecord(
        job_id="j",
        attempt=1,
        chunk=chunk,
        request_count=5,
        byte_count=1,
        est_tokens=1,
        recorded_at=0.0,
        provider_batch_id=f"b{chunk}",
        raw_status=detail,
        phase=phase,
        detail=detail,
        ended=ended,
    )
    for key, value in kwargs.items():
        setattr(record, key, value)
    return record


def test_validating_is_pending_with_detail() -> None:
    batches = [_batch(0, BatchStatus.PENDING, "validating", ended=False)]
    assert summarize(_job(), batches, ResultCounts()) == (BatchStatus.PENDING, "validating")


def test_finalizing_is_processing_with_detail() -> None:
    batches = [
        _batch(0, BatchStatus.PROCESSING, "finalizing", ended=False),
        _batch(1, BatchStatus.COMPLETED, "completed", ended=True, completed=5),
    ]
    assert summarize(_job(), batches, ResultCounts()) == (BatchStatus.PROCESSING, "finalizing")


def test_expired_with_partial_output_is_completed() -> None:
    batches = [_batch(0, BatchStatus.COMPLETED, "expired", ended=True, completed=3, failed=2)]
    status, detail = summarize(_job(total=5), batches, ResultCounts())
    assert status == BatchStatus.COMPLETED
    assert "expired" in detail and "2 of 5 failed" in detail


def test_nothing_succeeded_is_failed() -> None:
    batches = [_batch(0, BatchStatus.FAILED, "token_limit_exceeded", ended=True, collected=True)]
    status, detail = summarize(_job(total=5), batches, ResultCounts(errored=5, retryable=5))
    assert status == BatchStatus.FAILED
    assert "token_limit_exceeded" in detail and "5 retryable" in detail


def test_cancel_wins_and_shows_cancelling() -> None:
    batches = [_batch(0, BatchStatus.CANCELLED, "cancelling", ended=False)]
    assert summarize(_job(cancel_requested=True), batches, ResultCounts()) == (
        BatchStatus.CANCELLED,
        "cancelling",
    )


def test_progress_from_provider_counts_and_results() -> None:
    batches = [
        _batch(0, BatchStatus.PROCESSING, "in_progress", ended=False, completed=2, failed=1),
        _batch(1, BatchStatus.COMPLETED, "completed", ended=True, collected=True),
    ]
    report = progress(_job(created_at=0.0), batches, ResultCounts(succeeded=4, errored=1), now=3600.0)
    assert (report.completed, report.failed, report.total) == (6, 2, 10)
    assert report.percent == 80.0
    assert report.items_per_hour == 8.0
    assert report.eta_seconds == 900.0
