"""A small ticket pipeline wired to a running emulator, a persistent Dagster instance and helpers that
do what the daemon would: evaluate the sensor until it asks for a run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest

from batch_pipelines.components import BatchEngineResource, build_pipeline_defs, key_from_environment
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.pipeline import PipelineSpec, parse_pipeline_spec

ROWS_PER_DAY = 6
SCHEMA = {
    "type": "object",
    "properties": {"category": {"type": "string"}, "urgency": {"type": "integer"}},
    "required": ["category", "urgency"],
}


def ticket_spec(**changes: Any) -> PipelineSpec:
    declaration: dict[str, Any] = {
        "name": "tickets",
        "source": {"path": "data/*.parquet"},
        "partitions": {
            "daily": {"column": "created_at", "start_date": "2026-11-01", "end_date": "2026-11-04"}
        },
        "id_column": "ticket_id",
        "prompt": {"system": "Triage the ticket.", "user": "{subject}\n\n{body}"},
        "provider": "openai",
        "model": "gpt-4o-mini",
        "params": {"max_tokens": 30},
        "response_schema": SCHEMA,
    }
    declaration.update(changes)
    return parse_pipeline_spec(declaration)


def write_tickets(workdir: Path, days: int = 3) -> pl.DataFrame:
    rows = [
        {
            "ticket_id": f"t{day}-{index}",
            "created_at": datetime(2026, 11, 1 + day) + timedelta(hours=index),
            "subject": f"Subject {day}-{index}",
            "body": f"Body of ticket {day}-{index}",
        }
        for day in range(days)
        for index in range(ROWS_PER_DAY)
    ]
    frame = pl.DataFrame(rows)
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    frame.write_parquet(workdir / "data" / "tickets.parquet")
    return frame


@dataclass
class PipelineHarness:
    spec: PipelineSpec
    engine: BatchEngineResource
    instance: dg.DagsterInstance
    workdir: Path
    launched_run_keys: set[str] = field(default_factory=set)
    last_cursor: str | None = None  # the sensor cursor wait_for_run_requests ended with

    @property
    def defs(self) -> dg.Definitions:
        return build_pipeline_defs(self.spec, batch_engine=self.engine)

    def asset(self, name: str) -> dg.AssetsDefinition:
        key = dg.AssetKey([self.spec.name, name])
        [found] = [a for a in self.defs.assets or [] if isinstance(a, dg.AssetsDefinition) and a.key == key]
        return found

    def submit(self, partition_key: str) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [self.asset("input"), self.asset("submission")],
            partition_key=partition_key,
            instance=self.instance,
            resources={"batch_engine": self.engine},
        )

    def submit_only(self, partition_key: str) -> dg.ExecuteInProcessResult:
        """The submission step alone, on the input partition as it is now."""
        return dg.materialize(
            [self.asset("submission")],
            partition_key=partition_key,
            instance=self.instance,
            resources={"batch_engine": self.engine},
        )

    def materialize_all(self, partition_key: str) -> dg.ExecuteInProcessResult:
        """Input, submission and results in one run, as a whole-graph backfill or "Materialize all" does."""
        return dg.materialize(
            [self.asset("input"), self.asset("submission"), self.asset("results")],
            partition_key=partition_key,
            instance=self.instance,
            resources={"batch_engine": self.engine},
            raise_on_error=False,
        )

    def run_checks(self) -> dg.ExecuteInProcessResult:
        """The results asset's checks alone (the UI's "Execute checks": no partition, they describe the
        latest materialization)."""
        key = dg.AssetKey([self.spec.name, "results"])
        return dg.materialize(
            [self.asset("results")],
            selection=dg.AssetSelection.checks_for_assets(key),
            instance=self.instance,
            resources={"batch_engine": self.engine},
        )

    def tick(self, cursor: str | None = None) -> dg.SensorResult:
        sensor = self.defs.resolve_sensor_def(f"{self.spec.name}_completion_sensor")
        with dg.build_sensor_context(
            instance=self.instance, cursor=cursor, resources={"batch_engine": self.engine}
        ) as context:
            result = sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result

    def new_run_requests(self, result: dg.SensorResult) -> list[dg.RunRequest]:
        """The requests the daemon would launch: those whose run key was never launched."""
        return [
            request for request in result.run_requests or [] if request.run_key not in self.launched_run_keys
        ]

    def wait_for_run_requests(self, count: int = 1, timeout_s: float = 60) -> list[dg.RunRequest]:
        """Tick (as the daemon would) until the sensor has asked for `count` new runs."""
        deadline = time.monotonic() + timeout_s
        requests: list[dg.RunRequest] = []
        cursor = self.last_cursor
        while len(requests) < count:
            assert time.monotonic() < deadline, f"sensor asked for {len(requests)} of {count} runs in time"
            result = self.tick(cursor)
            cursor = self.last_cursor = result.cursor or None
            seen = {request.run_key for request in requests}
            requests.extend(
                request for request in self.new_run_requests(result) if request.run_key not in seen
            )
            time.sleep(0.05)
        return requests

    def collect(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        assert request.run_key is not None
        self.launched_run_keys.add(request.run_key)
        return dg.materialize(
            [self.asset("results")],
            partition_key=request.partition_key,
            instance=self.instance,
            resources={"batch_engine": self.engine},
            tags=dict(request.tags),
            raise_on_error=False,
        )

    def results(self, partition_key: str) -> pl.DataFrame:
        return pl.read_parquet(
            self.engine.layout(self.spec).partition_path("results", "tickets", partition_key)
        )

    def dead_letters(self, partition_key: str) -> pl.DataFrame:
        return pl.read_parquet(
            self.engine.layout(self.spec).partition_path("dead_letters", "tickets", partition_key)
        )


@pytest.fixture
def dagster_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
        yield instance


@pytest.fixture
def harness(
    tmp_path: Path, emulator: EmulatorProcess, dagster_instance: dg.DagsterInstance
) -> PipelineHarness:
    workdir = tmp_path / "work"
    write_tickets(workdir)
    engine = BatchEngineResource(
        api_key=key_from_environment("BATCH_PIPELINES_TEST_API_KEY", "sk-test"),
        base_url=emulator.openai_base_url,
        workdir=str(workdir),
    )
    return PipelineHarness(spec=ticket_spec(), engine=engine, instance=dagster_instance, workdir=workdir)
