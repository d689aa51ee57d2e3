"""Drives one pipeline through Dagster in this process, doing the daemon's part by hand: submission runs
per partition, completion-sensor ticks, and the results runs those ticks request (each run key once).

Every mode builds: `batch`; `auto` (its submission answers the urgent items realtime, so it needs a
`rate_limiter`); `realtime` (also with a `rate_limiter`; its submit run reads and answers the partition in
one go, there is no sensor, and `collect_all` has nothing to collect). The demo uses it; so can anyone who
wants a pipeline run to completion without `dagster dev`:

    engine = BatchEngineResource(api_key=dg.EnvVar("BATCH_PIPELINES_API_KEY"), workdir="work")
    driver = PipelineDriver(load_component_spec(Path("defs.yaml")), engine, dg.DagsterInstance.get())
    for partition_key in driver.partition_keys():
        driver.submit(partition_key)
    driver.collect_all()

The key goes by `dg.EnvVar` (a plain string is refused: Dagster would keep it in its run history).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG

from batch_pipelines.components.engine_session import open_engine, page_jobs
from batch_pipelines.components.factory import build_pipeline_defs, results_job_name, submit_job_name
from batch_pipelines.components.pipeline_component import BatchPipelineComponent
from batch_pipelines.components.policies import partition_tags
from batch_pipelines.components.progress_metadata import ETA_SECONDS, PERCENT_DONE
from batch_pipelines.components.rate_limiter_resource import RateLimiterResource
from batch_pipelines.components.resources import BatchEngineResource
from batch_pipelines.pipeline.spec import PipelineSpec


class PipelineDidNotFinishError(RuntimeError):
    """Jobs were still open when the deadline passed."""


def load_component_spec(defs_yaml: Path) -> PipelineSpec:
    """The spec a `BatchPipelineComponent` defs.yaml declares, its templates (`{{ env(...) }}`) resolved."""
    with defs_yaml.open(encoding="utf-8") as handle:  # a stream, so a YAML error names the file
        document = yaml.safe_load(handle)
    component = BatchPipelineComponent.resolve_from_yaml(yaml.safe_dump(document.get("attributes")))
    return component.pipeline_spec(origin=str(defs_yaml))


@dataclass
class PipelineDriver:
    spec: PipelineSpec
    batch_engine: BatchEngineResource
    instance: dg.DagsterInstance
    log: Callable[[str], None] = print
    dagster_log_level: str = "INFO"
    seen_run_keys: set[str] = field(default_factory=set)
    cursor: str | None = None
    rate_limiter: RateLimiterResource | None = None  # required by `mode: realtime` and `mode: auto`

    def __post_init__(self) -> None:
        if self.spec.mode != "batch" and self.rate_limiter is None:
            raise ValueError(
                f"pipeline {self.spec.name!r} has 'mode: {self.spec.mode}': its realtime calls draw on the "
                "shared limiter, so give PipelineDriver a rate_limiter (a RateLimiterResource)"
            )
        self.defs = build_pipeline_defs(
            self.spec, batch_engine=self.batch_engine, rate_limiter=self.rate_limiter
        )
        self.sensor = (
            None
            if self.spec.mode == "realtime"  # answered within the submit run: nothing to sense
            else self.defs.resolve_sensor_def(f"{self.spec.name}_completion_sensor")
        )

    def partition_keys(self) -> list[str]:
        job = self.defs.resolve_job_def(submit_job_name(self.spec))
        assert job.partitions_def is not None
        return list(job.partitions_def.get_partition_keys())

    def submit(self, partition_key: str) -> dg.ExecuteInProcessResult:
        job = self.defs.resolve_job_def(submit_job_name(self.spec))
        return job.execute_in_process(
            partition_key=partition_key,
            instance=self.instance,
            tags=partition_tags(self.spec.name, partition_key),
            run_config=self._run_config(),
        )

    def tick(self) -> dg.SensorResult:
        """One sensor evaluation; its progress observations are recorded on the instance. (A realtime
        pipeline has no sensor: an empty result.)"""
        if self.sensor is None:
            return dg.SensorResult()
        with dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources={"batch_engine": self.batch_engine}
        ) as context:
            result = self.sensor(context)
        assert isinstance(result, dg.SensorResult)
        self.cursor = result.cursor or None
        for event in result.asset_events:
            self.instance.report_runless_asset_event(event)
        return result

    def launch(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult | None:
        """Run a results request the way the daemon would: at most once per run key. The run carries the
        run key and sensor name as the daemon's runs do, so a daemon started later on the same instance
        knows these keys were launched and does not collect the partitions again."""
        tags = dict(request.tags)
        if request.run_key is not None:
            if request.run_key in self.seen_run_keys:
                return None
            self.seen_run_keys.add(request.run_key)
            sensor_name = self.sensor.name if self.sensor is not None else ""
            tags.update({RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: sensor_name})
        job = self.defs.resolve_job_def(results_job_name(self.spec))
        return job.execute_in_process(
            partition_key=request.partition_key,
            instance=self.instance,
            tags=tags,
            raise_on_error=False,
            run_config=self._run_config(),
        )

    def _run_config(self) -> dict[str, object]:
        return {"loggers": {"console": {"config": {"log_level": self.dagster_log_level}}}}

    def collect_all(self, *, timeout_s: float = 300.0, poll_s: float = 0.5) -> int:
        """Tick until no job of the pipeline is open and every requested results run has run; returns the
        number of results runs launched."""
        deadline = time.monotonic() + timeout_s
        launched = 0
        while True:
            launched_now = 0
            result = self.tick()
            self._log_progress(result)
            for request in result.run_requests or []:
                if self.launch(request) is not None:
                    launched_now += 1
                    self.log(f"  collected {request.partition_key} ({request.run_key})")
            launched += launched_now
            if not launched_now and not self.open_jobs():
                return launched
            if time.monotonic() > deadline:
                raise PipelineDidNotFinishError(
                    f"jobs of {self.spec.name!r} still open after {timeout_s:.0f}s"
                )
            time.sleep(poll_s)

    def _log_progress(self, result: dg.SensorResult) -> None:
        """One line per tick for the jobs seen part-done: the percent and ETA the observations carry."""
        running = []
        for event in result.asset_events:
            if not isinstance(event, dg.AssetObservation):
                continue
            metadata = {name: value.value for name, value in event.metadata.items()}
            percent = metadata.get(PERCENT_DONE)
            if isinstance(percent, float) and 0 < percent < 100:
                eta = metadata.get(ETA_SECONDS)
                running.append(
                    f"{event.partition} {percent:.0f}%"
                    + (f" (ETA {eta:.0f} s)" if isinstance(eta, float) else "")
                )
        if running:
            self.log(f"  in progress: {', '.join(running)}")

    def open_jobs(self) -> int:
        async def count() -> int:
            async with open_engine(self.batch_engine, self.spec) as engine:
                jobs, _ = await page_jobs(engine.store, self.spec, after=None, limit=10_000)
                return len(jobs)

        return asyncio.run(count())
