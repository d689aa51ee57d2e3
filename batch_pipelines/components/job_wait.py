"""A results step waiting, within a bound, for its partition's batch job to end.

A run that materializes input, submission and results together (a whole-graph backfill, "Materialize
all") reaches the results step seconds after the submission. Small jobs (and every job on the emulator)
end within seconds, so the step polls the provider until the job ends or the bound passes, reporting
progress at each poll; a job still running then is left to the completion sensor.
"""

from __future__ import annotations

from collections.abc import Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_delay, wait_fixed

from batch_pipelines.engine import BatchJob, BatchManager

MAX_POLL_S = 10.0


def poll_interval_s(sensor_interval_seconds: int) -> float:
    """As often as the sensor ticks, and at least every MAX_POLL_S, so progress moves while it waits."""
    return float(min(sensor_interval_seconds, MAX_POLL_S))


async def wait_for_job_end(
    manager: BatchManager,
    job_id: str,
    *,
    timeout_s: float,
    poll_s: float,
    on_progress: Callable[[BatchJob], None],
) -> BatchJob:
    """The job once it has ended, or as it stands when `timeout_s` has passed (still open)."""

    def still_open(job: BatchJob) -> bool:
        return not job.status.is_terminal

    def report(state: RetryCallState) -> None:
        if state.outcome is not None and not state.outcome.failed:
            on_progress(state.outcome.result())

    def as_it_stands(state: RetryCallState) -> BatchJob:
        assert state.outcome is not None
        job: BatchJob = state.outcome.result()
        return job

    polling = AsyncRetrying(
        retry=retry_if_result(still_open),
        wait=wait_fixed(poll_s),
        stop=stop_after_delay(timeout_s),
        before_sleep=report,
        retry_error_callback=as_it_stands,
    )
    job: BatchJob = await polling(manager.refresh, job_id)
    return job
