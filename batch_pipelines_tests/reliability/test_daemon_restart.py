"""The Dagster daemon killed and restarted while batch jobs are open: the completion sensor, running in
the new daemon from its stored cursor, collects every partition once — one results run per job attempt,
no duplicate rows, no provider call for an answered item."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import pytest

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.conftest import TEST_TIME_SCALE
from batch_pipelines_tests.e2e.deployment import DagsterDeployment
from batch_pipelines_tests.reliability.conftest import SEED
from batch_pipelines_tests.reliability.figures import record
from batch_pipelines_tests.reliability.pipeline_setup import (
    PIPELINE,
    batch_figures,
    days,
    make_driver,
    pipeline_spec,
    write_tickets,
)
from batch_pipelines_tests.reliability.provider_ledger import read_openai_ledger

PARTITIONS = 2
ROWS = 100
RESULTS_JOB = f"{PIPELINE}_results_job"


def results_runs(home: Path) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:  # reads home/dagster.yaml
        return list(instance.get_runs(filters=dg.RunsFilter(job_name=RESULTS_JOB)))


def all_collected(open_jobs: int, runs: list[dg.DagsterRun], base_url: str) -> bool:
    if open_jobs or any(not run.is_finished for run in runs):
        return False
    run_keys = {run.tags.get("dagster/run_key") for run in runs}
    return len(run_keys) >= read_openai_ledger(base_url).batches


# Real daemon and webserver processes (under a minute on a 2-core machine). The results runs (one per
# provider batch, retries included) are the bulk of it, so two partitions: two jobs open across the restart.
@pytest.mark.timeout(1200)
def test_sensor_resumes_after_the_daemon_is_killed_with_jobs_open(
    tmp_path: Path, dagster_instance: dg.DagsterInstance
) -> None:
    workdir = tmp_path / "work"
    frame = write_tickets(
        workdir, partitions=PARTITIONS, rows_per_partition=ROWS, invalid_share=0.02, seed=SEED
    )
    spec = pipeline_spec(
        PARTITIONS, source={"path": str(workdir / "data" / "*.parquet")}, sensor_interval_seconds=1
    )
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.model_dump_json())
    home = tmp_path / "dagster_home"

    with EmulatorProcess(time_scale=TEST_TIME_SCALE, seed=7) as emulator:
        emulator.configure({"faults": {"batch_error_rates": {"server_error": 0.05}}})
        env = {
            "BATCH_PIPELINES_E2E_SPEC": str(spec_file),
            "BATCH_PIPELINES_HOME": str(workdir),
            "BATCH_PIPELINES_API_KEY": "sk-daemon-test",
            "BATCH_PIPELINES_BASE_URL": emulator.openai_base_url,
        }
        with DagsterDeployment(home, "batch_pipelines_tests.e2e.location", env) as dagster:
            # Slow batches (~10 s real in progress), so the jobs are open when the daemon dies (checked).
            emulator.configure({"lifecycle": {"in_progress_min_s": 500.0, "in_progress_max_s": 500.0}})
            submitter = make_driver(
                spec, emulator.openai_base_url, workdir, dagster_instance, "sk-daemon-test"
            )
            for key in days(PARTITIONS):
                assert submitter.submit(key).success
            emulator.configure({"lifecycle": {"in_progress_min_s": 1.0, "in_progress_max_s": 5.0}})
            assert submitter.open_jobs() == PARTITIONS
            dagster.restart_daemon()
            assert submitter.open_jobs() == PARTITIONS  # the restart came before any job ended

            # Done when no job is open, every results run has finished, and every provider batch has had
            # its run: the tick that closes a job asks for its run only as the tick ends, so "no open job
            # and no unfinished run" alone also holds for a moment before the last run exists.
            deadline = time.monotonic() + 300
            while not all_collected(submitter.open_jobs(), results_runs(home), emulator.openai_base_url):
                if time.monotonic() > deadline:
                    pytest.fail(f"jobs still open or uncollected after 300 s\n{dagster.logs()}")
                time.sleep(0.25)
            runs = results_runs(home)

        ledger = read_openai_ledger(emulator.openai_base_url)

    # Runs the sensor launched (Dagster's automatic run retries carry the same key and a parent run id).
    launched = [run for run in runs if "dagster/parent_run_id" not in run.tags]
    run_keys = [run.tags.get("dagster/run_key") for run in launched]
    assert len(run_keys) == len(set(run_keys)) == ledger.batches  # one results run per provider batch
    newest: dict[str | None, dg.DagsterRun] = {}
    for run in runs:  # newest first
        newest.setdefault(run.tags.get("dagster/run_key"), run)
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in newest.values())
    ids = set(zip(frame["created_at"].dt.date().cast(str), frame["ticket_id"], strict=True))
    figures = record(
        batch_figures(
            "Dagster daemon SIGKILLed, restarted",
            workdir,
            ids,
            wasted_calls=ledger.wasted_calls,
            provider_calls=ledger.lines_sent,
        )
    )
    assert (figures.lost, figures.duplicate_rows, figures.wasted_calls) == (0, 0, 0)
    assert figures.with_result + figures.dead_lettered == len(ids)
