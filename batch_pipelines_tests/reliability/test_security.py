"""Security: the API key never lands in logs, Dagster's event log, Parquet, exceptions or the store;
the emulator listens on 127.0.0.1 only; `batch-pipelines query` cannot write, nor read outside the
results tree."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from batch_pipelines.cli import main
from batch_pipelines.components import BatchEngineResource, key_from_environment
from batch_pipelines.components.resources import PlainKeyError
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.conftest import TEST_TIME_SCALE
from batch_pipelines_tests.reliability.conftest import SEED
from batch_pipelines_tests.reliability.pipeline_setup import days, make_driver, pipeline_spec, write_tickets

SECRET_KEY = "sk-reliability-7f3c9a1e5b2d4c6e8a0f1b3d5e7c9a2b"
WRONG_KEY = "sk-wrong-0d9e8c7b6a5f4e3d2c1b0a9f8e7d6c5b"
LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


def files_holding(root: Path, secret: str) -> list[Path]:
    needle = secret.encode()
    return [path for path in root.rglob("*") if path.is_file() and needle in path.read_bytes()]


def test_the_api_key_appears_nowhere_a_run_leaves_anything(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    workdir = tmp_path / "work"
    write_tickets(workdir, partitions=2, rows_per_partition=60, invalid_share=0.05, seed=SEED)
    failures: list[str] = []
    (tmp_path / "dagster_home_ok").mkdir()
    with (
        EmulatorProcess(time_scale=TEST_TIME_SCALE, seed=7, api_keys=[SECRET_KEY]) as emulator,
        dg.DagsterInstance.local_temp(tempdir=str(tmp_path / "dagster_home_ok")) as instance,
    ):
        emulator.configure({"faults": {"batch_error_rates": {"server_error": 0.1, "rate_limited": 0.05}}})
        emulator.queue_scenario("expire_half", provider="openai")
        driver = make_driver(pipeline_spec(2), emulator.openai_base_url, workdir, instance, SECRET_KEY)
        first, second = days(2)
        assert driver.submit(first).success
        driver.collect_all(timeout_s=120, poll_s=0.1)
        # The same pipeline with a key the provider refuses: a failed run, with an exception and error logs.
        wrong = make_driver(pipeline_spec(2), emulator.openai_base_url, workdir, instance, WRONG_KEY)
        refused = wrong.defs.resolve_job_def(f"{pipeline_spec(2).name}_submit_job").execute_in_process(
            partition_key=second, instance=instance, raise_on_error=False
        )
        assert not refused.success
        failures = [str(event.event_specific_data) for event in refused.all_events if event.is_step_failure]
    assert failures and any("401" in text or "API key" in text for text in failures), failures

    captured = capfd.readouterr()
    for secret in (SECRET_KEY, WRONG_KEY):
        assert files_holding(tmp_path, secret) == []  # Parquet, the store, Dagster's event log and runs
        assert secret not in caplog.text
        assert secret not in captured.out + captured.err
        assert not any(secret in text for text in failures)
    assert (workdir / "results").exists() and (tmp_path / "dagster_home_ok").exists()  # searched real output


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on `port`, from /proc/net/tcp and tcp6 (hex, as the kernel
    writes them)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == LISTEN:
                found.add(address)
    return found


def test_a_key_given_in_clear_to_the_resource_is_refused_and_not_repeated() -> None:
    with pytest.raises(PlainKeyError, match=r"pass dg\.EnvVar\('NAME'\)") as refused:
        BatchEngineResource(api_key=SECRET_KEY, workdir="unused")
    assert SECRET_KEY not in str(refused.value)
    by_name = BatchEngineResource(api_key=key_from_environment("BP_SECURITY_TEST_KEY", SECRET_KEY))
    assert by_name.provider_key() == SECRET_KEY


def test_the_emulator_listens_on_loopback_only(emulator: EmulatorProcess) -> None:
    assert emulator.url.startswith("http://127.0.0.1:")
    assert listening_addresses(emulator.port) == {"0100007F"}  # 127.0.0.1, nothing on 0.0.0.0 or ::


@dataclass(frozen=True)
class QueryAnswer:
    returncode: int
    stdout: str
    stderr: str


def test_query_cannot_write_or_read_outside_the_results_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def run_query(workdir: Path, sql: str) -> QueryAnswer:
        code = main(["query", "--workdir", str(workdir), sql])
        captured = capsys.readouterr()
        return QueryAnswer(code, captured.out, captured.err)

    workdir = tmp_path / "work"
    results = workdir / "results" / "tickets"
    results.mkdir(parents=True)
    pl.DataFrame({"pipeline": ["tickets"], "partition_key": ["k"], "id": ["1"]}).write_parquet(
        results / "k.parquet"
    )
    secret_file = tmp_path / "elsewhere.parquet"
    pl.DataFrame({"secret": ["do not read"]}).write_parquet(secret_file)
    (tmp_path / "elsewhere.csv").write_text("secret\ndo not read\n")

    allowed = run_query(workdir, "SELECT count(*) AS n FROM results")
    assert allowed.returncode == 0 and "1" in allowed.stdout, allowed.stderr

    attempts = {
        f"SELECT * FROM read_parquet('{secret_file}')": "Permission Error",
        f"SELECT * FROM read_csv('{tmp_path / 'elsewhere.csv'}')": "Permission Error",
        f"SELECT * FROM read_parquet('{results}/../../../elsewhere.parquet')": "Permission Error",
        f"COPY (SELECT 1) TO '{tmp_path / 'written.csv'}'": "Permission Error",
        f"ATTACH '{tmp_path / 'other.duckdb'}' AS other": "Permission Error",
        "SET enable_external_access = true": "configuration has been locked",
        "CREATE TABLE copied AS SELECT * FROM results": "read-only",
    }
    for sql, refusal in attempts.items():
        answer = run_query(workdir, sql)
        assert answer.returncode == 1, (sql, answer.stdout)
        assert refusal in answer.stderr, (sql, answer.stderr)
        assert "do not read" not in answer.stdout
    assert not (tmp_path / "written.csv").exists() and not (tmp_path / "other.duckdb").exists()
