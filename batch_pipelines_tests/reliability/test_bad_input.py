"""Bad input: each case gets an error naming the file, row or field, and everything else still completes.

Rows (null or duplicate ids, bytes that are not UTF-8, a prompt over the context window) go to the rejects
table with their reason while the partition is answered; declarations (a missing id column, a template
naming a missing column, a `../` partition key, malformed YAML) fail before anything is sent; an empty
partition submits nothing; result lines the provider returns truncated or not as JSON are re-asked as
a new attempt; a large source file is streamed, not loaded whole.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx
import polars as pl
import pytest
import yaml

from batch_pipelines.demo.driver import load_component_spec
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.pipeline import PipelineSpecError, parse_pipeline_spec
from batch_pipelines.pipeline.source import SourceError, read_partition
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines_tests.conftest import TEST_TIME_SCALE
from batch_pipelines_tests.reliability.pipeline_setup import (
    PIPELINE,
    days,
    make_driver,
    pipeline_spec,
    write_tickets,
)
from batch_pipelines_tests.reliability.provider_ledger import read_openai_ledger

GOOD_ROWS = 20


def csv_line(ticket_id: str, hour: int, subject: bytes, body: bytes) -> bytes:
    return b",".join([ticket_id.encode(), f"2026-11-01 {hour:02d}:00:00".encode(), subject, body]) + b"\n"


def write_bad_csv(workdir: Path) -> Path:
    """Day 1: 20 good rows and five bad ones; day 2: no rows at all (an empty partition)."""
    lines = [b"ticket_id,created_at,subject,body\n"]
    lines += [
        csv_line(f"ok{index}", index % 24, b"Late parcel", b"Where is it?") for index in range(GOOD_ROWS)
    ]
    lines += [
        csv_line("", 1, b"No id", b"a row without an id"),
        csv_line("twice", 2, b"First", b"one of two rows with the same id"),
        csv_line("twice", 3, b"Second", b"the other one"),
        csv_line("latin1", 4, b"Caf\xe9 \xff", b"bytes that are not UTF-8"),
        csv_line("huge", 5, b"Essay", b"word " * 110_000),  # ~137k tokens against a 128k window
    ]
    path = workdir / "data" / "tickets.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(lines))
    return path


def test_bad_rows_are_rejected_with_reasons_and_the_rest_is_answered(
    emulator: EmulatorProcess, tmp_path: Path, dagster_instance: dg.DagsterInstance
) -> None:
    workdir = tmp_path / "work"
    write_bad_csv(workdir)
    spec = pipeline_spec(2, source={"path": "data/*.csv"})
    driver = make_driver(spec, emulator.openai_base_url, workdir, dagster_instance)
    day, empty_day = days(2)
    assert driver.submit(day).success
    empty = driver.submit(empty_day)
    assert empty.success  # an empty partition is not an error: nothing to send
    [submitted] = empty.asset_materializations_for_node(f"{PIPELINE}__submission")
    assert submitted.metadata["items_submitted"].value == 0
    driver.collect_all(timeout_s=120, poll_s=0.1)

    layout = StorageLayout.for_workdir(workdir)
    results = pl.read_parquet(layout.partition_path("results", PIPELINE, day))
    assert sorted(results["id"]) == sorted(f"ok{index}" for index in range(GOOD_ROWS))
    rejects = pl.read_parquet(layout.partition_path("rejects", PIPELINE, day))
    reasons = {(row["id"], row["row_number"]): row["reason"] for row in rejects.iter_rows(named=True)}
    over_window = reasons.pop(("huge", 24))
    estimate = re.fullmatch(
        r"prompt of about (\d+) tokens plus 40 answer tokens exceeds the gpt-4o-mini context window "
        r"\(128000 tokens\)",
        over_window,
    )
    assert estimate is not None and int(estimate.group(1)) > 128_000, over_window
    assert reasons == {
        (None, 20): "id column 'ticket_id' is null",
        ("twice", 21): "id is not unique in column 'ticket_id'",
        ("twice", 22): "id is not unique in column 'ticket_id'",
        ("latin1", 23): "column 'subject' holds bytes that are not valid UTF-8 (file tickets.csv, line 25)",
    }
    assert read_openai_ledger(emulator.openai_base_url).lines_sent == GOOD_ROWS  # no bad row was sent


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"id_column": "ticket_no"}, "ticket_no"),
        ({"prompt": {"user": "{subject}: {customer_name}"}}, "customer_name"),
    ],
)
def test_a_column_the_declaration_names_but_the_source_lacks_fails_naming_it(
    tmp_path: Path, change: dict[str, object], named: str
) -> None:
    write_tickets(tmp_path, partitions=1, rows_per_partition=5, invalid_share=0.0, seed=1)
    spec = pipeline_spec(1, **change)
    with pytest.raises(SourceError) as raised:
        read_partition(spec, days(1)[0], tmp_path)
    message = str(raised.value)
    assert named in message and PIPELINE in message and "ticket_id, created_at, subject, body" in message


def test_a_partition_key_that_tries_to_leave_the_results_folder_is_refused(tmp_path: Path) -> None:
    declaration = pipeline_spec(1).model_dump(mode="json")
    declaration["partitions"] = {"static": {"column": "subject", "keys": ["fine", "../../etc"]}}
    with pytest.raises(PipelineSpecError, match=r"field 'partitions.static.keys'.*'\.\./\.\./etc'"):
        parse_pipeline_spec(declaration)
    layout = StorageLayout.for_workdir(tmp_path)
    for key in ("../escape", "a/../../b", "..", "/abs"):
        with pytest.raises(ValueError, match="partition key"):
            layout.partition_path("results", PIPELINE, key)
    assert not any(tmp_path.parent.glob("escape*"))


def test_malformed_pipeline_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    defs = tmp_path / "defs.yaml"
    defs.write_text(
        "type: batch_pipelines.components.BatchPipelineComponent\n"
        "attributes:\n  name: tickets\n   source: [unclosed\n"
    )
    with pytest.raises(yaml.YAMLError) as raised:
        load_component_spec(defs)
    assert str(defs) in str(raised.value) and "line 4" in str(raised.value)

    declaration = {
        "name": "tickets",
        "source": {"path": "data/*.parquet"},
        "partitions": {"static": {"column": "region", "keys": ["eu"]}},
        "id_column": "ticket_id",
        "prompt": {"user": "{subject}"},
        "provider": "openai",
        "model": "gpt-4o-mini",
        "max_attempts": "many",
    }
    component = {"type": "batch_pipelines.components.BatchPipelineComponent", "attributes": declaration}
    defs.write_text(yaml.safe_dump(component))
    with pytest.raises(Exception, match="max_attempts"):
        load_component_spec(defs)


def test_truncated_and_non_json_result_lines_are_asked_again(
    tmp_path: Path, dagster_instance: dg.DagsterInstance
) -> None:
    workdir = tmp_path / "work"
    frame = write_tickets(workdir, partitions=1, rows_per_partition=50, invalid_share=0.0, seed=3)
    [day] = days(1)
    state = tmp_path / "emulator_state"
    with EmulatorProcess(time_scale=TEST_TIME_SCALE, seed=7, state_dir=state) as emulator:
        driver = make_driver(pipeline_spec(1), emulator.openai_base_url, workdir, dagster_instance)
        assert driver.submit(day).success
        output_file = wait_for_output_file(emulator)
        # The provider's stored output, damaged at the source: one line cut short, one not JSON at all.
        data = state / "files" / f"{output_file}.data"
        lines = data.read_bytes().splitlines(keepends=True)
        damaged = {json.loads(lines[3])["custom_id"], json.loads(lines[7])["custom_id"]}
        lines[3] = lines[3][: len(lines[3]) // 2] + b"\n"
        lines[7] = b"<html>502 Bad Gateway</html>\n"
        data.write_bytes(b"".join(lines))
        emulator.restart()
        driver.collect_all(timeout_s=120, poll_s=0.1)

        results = pl.read_parquet(StorageLayout.for_workdir(workdir).partition_path("results", PIPELINE, day))
        assert sorted(results["id"]) == sorted(frame["ticket_id"])  # every item answered, once
        attempts = dict(zip(results["id"], results["attempt"], strict=True))
        assert {item for item, attempt in attempts.items() if attempt == 2} == damaged
        ledger = read_openai_ledger(emulator.openai_base_url)
        assert ledger.batches == 2 and ledger.wasted_calls == 0


def wait_for_output_file(emulator: EmulatorProcess) -> str:
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=emulator.openai_base_url, headers={"Authorization": "Bearer k"}) as client:
        while time.monotonic() < deadline:
            [batch] = client.get("/batches").raise_for_status().json()["data"]
            if batch["status"] == "completed":
                return str(batch["output_file_id"])
            time.sleep(0.05)
    raise TimeoutError("the batch did not complete")


# What the input asset does with a partition (stream it from the source to the inputs and rejects files),
# in a process of its own, reporting how far its anonymous memory (RssAnon, sampled) rose above where it
# started: a memory-mapped file's pages are page cache, not held data.
PEAK_MEMORY_PROBE = """
import sys, threading, time
from pathlib import Path
import polars as pl
from batch_pipelines.pipeline.source import split_partition
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines_tests.reliability.pipeline_setup import pipeline_spec

def anonymous_bytes():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("RssAnon:"))

peak, done = [0], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], anonymous_bytes())
        time.sleep(0.002)

workdir, partitions, key = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
spec = pipeline_spec(partitions, source={"path": "data/*.csv"})
pl.LazyFrame({"warm": [1]}).collect(engine="streaming")  # polars' thread pools are not the data
before = anonymous_bytes()
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
layout = StorageLayout.for_workdir(workdir)
with (
    layout.partition_writer("inputs", spec.name, key) as inputs,
    layout.partition_writer("rejects", spec.name, key) as rejects,
):
    for batch in split_partition(spec, key, workdir):
        inputs.write(batch.accepted)
        rejects.write(batch.rejects)
done.set()
sampler.join()
print(inputs.rows, rejects.rows, peak[0] - before)
"""

PARTITIONS = 1  # the whole file is the partition: holding the partition would hold the file


def write_large_csv(workdir: Path, target_bytes: int, partitions: int = PARTITIONS) -> int:
    """A CSV of about `target_bytes` spread over `partitions` days, written in slices (never whole)."""
    path = workdir / "data" / "big.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    slice_rows = 100_000
    start = 0
    with path.open("wb") as handle:
        handle.write(b"ticket_id,created_at,subject,body\n")
        while handle.tell() < target_bytes:
            row = pl.int_range(start, start + slice_rows, eager=True).alias("row")
            pl.DataFrame(row).select(
                pl.format("r{}", "row").alias("ticket_id"),
                (pl.datetime(2026, 11, 1) + pl.duration(days=pl.col("row") % partitions)).alias("created_at"),
                pl.lit("s").alias("subject"),
                pl.format("{} {}", "row", pl.lit("x" * 900)).alias("body"),
            ).write_csv(handle, include_header=False)
            start += slice_rows
    return path.stat().st_size


def streamed_memory(workdir: Path, target_bytes: int) -> tuple[int, int]:
    """(file size, peak memory growth) for streaming one partition of a CSV of about `target_bytes`."""
    size = write_large_csv(workdir, target_bytes)
    probe = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY_PROBE, str(workdir), str(PARTITIONS), days(PARTITIONS)[-1]],
        capture_output=True,
        text=True,
        check=True,
        timeout=1200,
    )
    accepted, rejected, grown = (int(value) for value in probe.stdout.split())
    rows = pl.scan_csv(workdir / "data" / "big.csv").select(pl.len()).collect().item()
    assert (accepted, rejected) == (rows // PARTITIONS, 0)  # every row of the partition, once
    assert (
        pl.scan_parquet(
            StorageLayout.for_workdir(workdir).partition_path("inputs", PIPELINE, days(PARTITIONS)[-1])
        )
        .select(pl.len())
        .collect()
        .item()
        == accepted
    )
    return size, grown


def assert_streamed(tmp_path: Path, large_bytes: int) -> None:
    """Memory does not grow with the file: a file five times larger costs (almost) no more memory,
    where holding the partition (here the whole file) would cost at least its text."""
    small_size, small_grown = streamed_memory(tmp_path / "small", large_bytes // 5)
    large_size, large_grown = streamed_memory(tmp_path / "large", large_bytes)
    partition_growth = (large_size - small_size) // PARTITIONS
    assert large_grown - small_grown < partition_growth / 4, (
        f"peak memory grew by {large_grown:,} bytes streaming a {large_size:,}-byte file, "
        f"{small_grown:,} for a {small_size:,}-byte one"
    )


def test_a_large_input_file_is_streamed_not_loaded_whole(tmp_path: Path) -> None:
    assert_streamed(tmp_path, 640 * 1024 * 1024)


@pytest.mark.soak
def test_soak_a_two_gigabyte_input_file_is_streamed(tmp_path: Path) -> None:
    assert_streamed(tmp_path, 2 * 1024**3)
