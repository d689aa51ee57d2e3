"""Crashes and races around one partition: the run process SIGKILLed while submitting (after the upload,
before the batch is recorded) and while writing results, the emulator restarted mid-batch, and two runs of
the same partition at once. Each ends complete and exactly-once, with no second provider batch for the
same items (checked against the provider's own record)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.conftest import TEST_TIME_SCALE
from batch_pipelines_tests.reliability.conftest import SEED
from batch_pipelines_tests.reliability.figures import Figures, record
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
ROWS = 500
KILLED = -signal.SIGKILL


def input_ids(frame: pl.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["created_at"].dt.date().cast(str), frame["ticket_id"], strict=True))


def step_process(
    step: str, workdir: Path, home: Path, emulator: EmulatorProcess, key: str, kill_at: str = "never"
) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "batch_pipelines_tests.reliability.crash_runner",
        step,
        str(workdir),
        str(home),
        emulator.openai_base_url,
        str(PARTITIONS),
        key,
        kill_at,
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen[str], timeout_s: float = 120) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout_s)
    return process.returncode, output


def check_exactly_once(
    scenario: str, emulator: EmulatorProcess, workdir: Path, frame: pl.DataFrame
) -> Figures:
    ledger = read_openai_ledger(emulator.openai_base_url)
    ids = input_ids(frame)
    figures = record(
        batch_figures(
            scenario, workdir, ids, wasted_calls=ledger.wasted_calls, provider_calls=ledger.lines_sent
        )
    )
    assert (figures.lost, figures.duplicate_rows, figures.wasted_calls) == (0, 0, 0)
    assert figures.with_result + figures.dead_lettered == len(ids)
    return figures


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    # Create the instance's storage once, as a deployment does before starting its processes: two
    # processes creating a fresh SQLite instance at the same moment race on Dagster's schema migrations.
    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
        instance.get_runs(limit=1)
    return home


def test_killed_after_the_batch_create_before_recording_it_resumes_without_a_second_batch(
    emulator: EmulatorProcess, tmp_path: Path, dagster_home: Path
) -> None:
    workdir = tmp_path / "work"
    frame = write_tickets(workdir, partitions=1, rows_per_partition=ROWS, invalid_share=0.01, seed=SEED)
    [key] = days(1)

    code, output = finish(step_process("submit", workdir, dagster_home, emulator, key, "after_create"))
    assert code == KILLED, output
    assert emulator.stats()["batches_created"]["openai"] == 1  # the upload and the create happened

    code, output = finish(step_process("submit", workdir, dagster_home, emulator, key))
    assert code == 0, output
    assert emulator.stats()["batches_created"]["openai"] == 1  # adopted, not created again

    with dg.DagsterInstance.local_temp(tempdir=str(dagster_home)) as instance:
        make_driver(pipeline_spec(PARTITIONS), emulator.openai_base_url, workdir, instance).collect_all(
            timeout_s=120, poll_s=0.1
        )
    check_exactly_once("SIGKILL after batch create", emulator, workdir, frame)
    assert read_openai_ledger(emulator.openai_base_url).batches == 1


@pytest.mark.parametrize("kill_at", ["results_rename", "dead_letters_rename"])
def test_killed_while_writing_results_rerun_completes_exactly_once(
    emulator: EmulatorProcess, tmp_path: Path, dagster_home: Path, kill_at: str
) -> None:
    workdir = tmp_path / "work"
    frame = write_tickets(workdir, partitions=1, rows_per_partition=ROWS, invalid_share=0.02, seed=SEED)
    [key] = days(1)
    emulator.configure({"faults": {"batch_error_rates": {"server_error": 0.1}}})
    with dg.DagsterInstance.local_temp(tempdir=str(dagster_home)) as instance:
        driver = make_driver(pipeline_spec(PARTITIONS), emulator.openai_base_url, workdir, instance)
        assert driver.submit(key).success

    code, output = finish(step_process("collect", workdir, dagster_home, emulator, key, kill_at))
    assert code == KILLED, output
    tables = workdir / "results" / PIPELINE, workdir / "dead_letters" / PIPELINE
    written = {table.parent.name for table in tables if (table / f"{key}.parquet").exists()}
    assert written == ({"results"} if kill_at == "dead_letters_rename" else set())
    assert emulator.stats()["batches_created"]["openai"] == 1  # died before resubmitting anything
    assert list(workdir.glob(".collecting-*")), "the killed run's scratch folder"

    with dg.DagsterInstance.local_temp(tempdir=str(dagster_home)) as instance:
        driver = make_driver(pipeline_spec(PARTITIONS), emulator.openai_base_url, workdir, instance)
        driver.collect_all(timeout_s=120, poll_s=0.1)
    assert not list(workdir.glob(".collecting-*")), "the rerun removes what the killed run left"
    figures = check_exactly_once(f"SIGKILL before {kill_at.replace('_', ' ')}", emulator, workdir, frame)
    assert figures.dead_letter_reasons["invalid_request"] > 0
    ledger = read_openai_ledger(emulator.openai_base_url)
    assert all(len(set(sends)) == len(sends) for sends in ledger.history.values())
    assert ledger.batches <= pipeline_spec(PARTITIONS).max_attempts  # one batch per attempt, never two


def test_emulator_restarted_mid_batch_the_pipeline_carries_on(tmp_path: Path, dagster_home: Path) -> None:
    workdir = tmp_path / "work"
    frame = write_tickets(
        workdir, partitions=PARTITIONS, rows_per_partition=ROWS, invalid_share=0.0, seed=SEED
    )
    with (
        EmulatorProcess(
            time_scale=TEST_TIME_SCALE, seed=7, state_dir=tmp_path / "emulator_state"
        ) as emulator,
        dg.DagsterInstance.local_temp(tempdir=str(dagster_home)) as instance,
    ):
        # Batches take ~2 s (real) in progress, so the restart lands while they are open.
        emulator.configure({"lifecycle": {"in_progress_min_s": 100.0, "in_progress_max_s": 100.0}})
        driver = make_driver(pipeline_spec(PARTITIONS), emulator.openai_base_url, workdir, instance)
        for key in days(PARTITIONS):
            assert driver.submit(key).success
        assert driver.open_jobs() == PARTITIONS
        emulator.restart()
        assert driver.open_jobs() == PARTITIONS  # still open after the restart, none collected yet
        driver.collect_all(timeout_s=120, poll_s=0.1)
        check_exactly_once("emulator restarted mid-batch", emulator, workdir, frame)
        assert read_openai_ledger(emulator.openai_base_url).batches == PARTITIONS


def test_two_runs_of_one_partition_at_once_create_one_batch_and_one_row_per_item(
    emulator: EmulatorProcess, tmp_path: Path, dagster_home: Path
) -> None:
    workdir = tmp_path / "work"
    frame = write_tickets(workdir, partitions=1, rows_per_partition=ROWS, invalid_share=0.01, seed=SEED)
    [key] = days(1)
    emulator.configure({"faults": {"batch_error_rates": {"server_error": 0.05}}})

    submitters = [step_process("submit", workdir, dagster_home, emulator, key) for _ in range(2)]
    outcomes = [finish(racer) for racer in submitters]
    # Both submissions succeed: one creates the batch, the other finds the same job id in hand.
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    assert emulator.stats()["batches_created"]["openai"] == 1

    collectors = [step_process("collect", workdir, dagster_home, emulator, key) for _ in range(2)]
    outcomes = [finish(racer) for racer in collectors]
    # One collects (and resubmits the transient failures). The other either collected the same rows
    # (idempotent merge) or found the attempt it was asked for already collected and the job reopened
    # for the resubmission: it writes nothing and ends successfully, reporting the files as they are.
    assert [code for code, _ in outcomes] == [0, 0], outcomes

    with dg.DagsterInstance.local_temp(tempdir=str(dagster_home)) as instance:
        driver = make_driver(pipeline_spec(PARTITIONS), emulator.openai_base_url, workdir, instance)
        driver.collect_all(timeout_s=120, poll_s=0.1)
    check_exactly_once("two runs of one partition at once", emulator, workdir, frame)
    ledger = read_openai_ledger(emulator.openai_base_url)
    assert all(len(set(sends)) == len(sends) for sends in ledger.history.values())
    first_attempt = {batch for sends in ledger.history.values() for batch, _ok in sends[:1]}
    assert len(first_attempt) == 1  # both submissions share one provider batch
