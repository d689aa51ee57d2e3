"""What the Dagster instance says about a partition's results: which job attempt its latest
materialization holds, and whether a run that will collect it is under way.

The completion sensor asks both before it requests a results run, and a results run requested for an
attempt asks the first before it collects, so an attempt that a backfill's results step (or any other
run) already wrote is not collected and materialized a second time.
"""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.tags import PARTITION_NAME_TAG

from batch_pipelines.engine.models import BatchStatus

RUNS_NOT_ENDED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
TERMINAL = {status.value for status in BatchStatus if status.is_terminal}


def results_hold_attempt(
    instance: dg.DagsterInstance, results_key: dg.AssetKey, partition_key: str, job_id: str, attempt: int
) -> bool:
    """Whether the partition's latest results materialization collected `attempt` of `job_id`.

    A materialization describes the job as it stood after collection: ended (that attempt is in the
    files) or reopened for a resubmission (the attempts before it are)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=results_key, asset_partitions=[partition_key]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return False
    metadata = records[0].asset_materialization.metadata
    if _text(metadata.get("job_id")) != job_id:
        return False
    recorded_attempt = metadata.get("attempt")
    if not isinstance(recorded_attempt, dg.IntMetadataValue) or recorded_attempt.value is None:
        return False
    collected_through = recorded_attempt.value - (_text(metadata.get("status")) not in TERMINAL)
    return collected_through >= attempt


def results_run_under_way(
    instance: dg.DagsterInstance, results_key: dg.AssetKey, results_job_name: str, partition_key: str
) -> bool:
    """Whether a run that materializes this partition's results is queued or running (a backfill's,
    a manual one, or one this sensor requested earlier)."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=RUNS_NOT_ENDED, tags={PARTITION_NAME_TAG: partition_key})
    )
    for record in records:
        run = record.dagster_run
        selection = run.asset_selection
        if (selection is not None and results_key in selection) or (
            selection is None and run.job_name == results_job_name
        ):
            return True
    return False


def _text(value: dg.MetadataValue | None) -> str | None:
    return value.value if isinstance(value, dg.TextMetadataValue) else None
