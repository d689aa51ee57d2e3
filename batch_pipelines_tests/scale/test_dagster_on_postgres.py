"""A Dagster instance on PostgreSQL from the example dagster.yaml: a partition submitted in one run, the
completion sensor asking for its results run, and the materialization recorded in PostgreSQL, with the
BatchStore in PostgreSQL too (configuration only: the same pipeline code as the embedded default)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from batch_pipelines.components import BatchEngineResource, key_from_environment
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines_tests.components.conftest import (
    ROWS_PER_DAY,
    PipelineHarness,
    ticket_spec,
    write_tickets,
)

pytestmark = pytest.mark.services

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "postgres" / "dagster.yaml"
RESULTS = dg.AssetKey(["tickets", "results"])


@pytest.fixture
def postgres_instance(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(EXAMPLE_CONFIG, home / "dagster.yaml")
    dagster_url = sa.make_url(postgres_url).set(drivername="postgresql+psycopg2")
    monkeypatch.setenv("BATCH_PIPELINES_DAGSTER_PG_URL", dagster_url.render_as_string(hide_password=False))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def test_sensor_triggered_materialization_on_a_postgres_instance(
    tmp_path: Path, emulator: EmulatorProcess, postgres_instance: dg.DagsterInstance, postgres_url: str
) -> None:
    assert type(postgres_instance.run_storage).__name__ == "PostgresRunStorage"
    workdir = tmp_path / "work"
    write_tickets(workdir)
    engine = BatchEngineResource(
        api_key=key_from_environment("BATCH_PIPELINES_TEST_API_KEY", "sk-test"),
        base_url=emulator.openai_base_url,
        workdir=str(workdir),
        store_url=postgres_url,
    )
    harness = PipelineHarness(spec=ticket_spec(), engine=engine, instance=postgres_instance, workdir=workdir)

    assert harness.submit("2026-11-02").success
    assert not (workdir / "batches.db").exists()  # the ledger is in PostgreSQL

    [request] = harness.wait_for_run_requests()
    assert request.partition_key == "2026-11-02"
    collected = harness.collect(request)
    assert collected.success
    assert harness.results("2026-11-02").height == ROWS_PER_DAY

    with dg.DagsterInstance.from_config(str(postgres_instance.root_directory)) as another_process:
        event = another_process.get_latest_materialization_event(RESULTS)
        assert event is not None
        assert event.run_id == collected.run_id
        assert event.asset_materialization is not None
        assert event.asset_materialization.partition == "2026-11-02"
        [run] = another_process.get_runs(dg.RunsFilter(run_ids=[collected.run_id]))
        assert run.status == dg.DagsterRunStatus.SUCCESS
