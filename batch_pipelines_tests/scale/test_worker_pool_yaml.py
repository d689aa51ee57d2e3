"""A pipeline's `workers:` section in YAML becomes the worker job and its queue-depth scaling sensor:
loaded as a component, the sensor asks for runs by the SQS queue's depth (moto's server) up to the
ceiling, a worker run drains the queue into the PostgreSQL ledger, and the pool goes back to zero."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import boto3
import dagster as dg
import pytest
from dagster.components.testing import create_defs_folder_sandbox

from batch_pipelines.components import BatchEngineResource, BatchPipelineComponent, key_from_environment
from batch_pipelines.components.rate_limiter_resource import RateLimiterResource
from batch_pipelines.components.worker_scaling import WORKER_POOL_TAG
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine.models import BatchRequest
from batch_pipelines.pipeline import PipelineSpecError, parse_pipeline_spec
from batch_pipelines.realtime.sqs_queue import SqsWorkQueue
from batch_pipelines_tests.components.conftest import ticket_spec

pytestmark = pytest.mark.usefixtures("aws_credentials")


def component_yaml(workers: dict[str, Any]) -> dict[str, Any]:
    attributes = ticket_spec().model_dump(mode="json", exclude_none=True)
    attributes["workers"] = workers
    return {"type": "batch_pipelines.components.BatchPipelineComponent", "attributes": attributes}


@pytest.fixture
def yaml_defs(request: pytest.FixtureRequest) -> Iterator[dg.Definitions]:
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(
            component_cls=BatchPipelineComponent, defs_yaml_contents=component_yaml(request.param)
        )
        with sandbox.load_component_and_build_defs(defs_path=path) as (_component, defs):
            yield defs


@pytest.mark.parametrize(
    "yaml_defs", [{"queue": "tickets-urgent", "max_workers": 2, "sensor_interval_seconds": 15}], indirect=True
)
def test_yaml_workers_become_a_worker_job_and_a_scaling_sensor(yaml_defs: dg.Definitions) -> None:
    resources = {
        "batch_engine": BatchEngineResource(),
        "rate_limiter": RateLimiterResource(requests_per_minute=60, tokens_per_minute=6000),
    }
    yaml_defs = dg.Definitions.merge(yaml_defs, dg.Definitions(resources=resources))
    job = yaml_defs.resolve_job_def("tickets_realtime_worker")
    assert job.tags[WORKER_POOL_TAG] == "tickets"
    sensor = yaml_defs.resolve_sensor_def("tickets_worker_scaling")
    assert sensor.job_name == "tickets_realtime_worker"
    assert sensor.minimum_interval_seconds == 15
    assert "up to 2 worker runs" in (sensor.description or "")
    assert sensor.required_resource_keys == {"batch_engine"}


def test_workers_need_a_realtime_provider() -> None:
    declaration = ticket_spec().model_dump(mode="json", exclude_none=True)
    declaration.update(provider="bedrock", model="anthropic.claude-3-5-haiku-20241022-v1:0")
    with pytest.raises(PipelineSpecError, match="field 'workers'"):
        parse_pipeline_spec({**declaration, "workers": {"queue": "q"}})
    with pytest.raises(PipelineSpecError, match=r"field 'workers\.max_workers'"):
        parse_pipeline_spec(
            {
                **ticket_spec().model_dump(mode="json", exclude_none=True),
                "workers": {"queue": "q", "max_workers": 0},
            }
        )


QUEUE = f"tickets-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(
    "yaml_defs",
    [{"queue": QUEUE, "backend": "sqs", "max_workers": 3, "items_per_worker": 10, "concurrency": 4}],
    indirect=True,
)
def test_the_yaml_pool_scales_by_sqs_depth_and_drains_the_queue(
    yaml_defs: dg.Definitions,
    tmp_path: Path,
    emulator: EmulatorProcess,
    aws_endpoint: str,
    postgres_url: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", aws_endpoint)  # boto3's usual configuration
    engine = BatchEngineResource(
        api_key=key_from_environment("BATCH_PIPELINES_TEST_API_KEY", "sk-test"),
        base_url=emulator.openai_base_url,
        workdir=str(tmp_path),
        store_url=postgres_url,
    )
    producer = SqsWorkQueue.create(
        boto3.client("sqs"), QUEUE, ledger_url=postgres_url, max_attempts=3, visibility_timeout_s=300
    )
    tickets = [
        BatchRequest(id=f"t{i}", messages=[{"role": "user", "content": f"Classify ticket {i}"}])
        for i in range(25)
    ]

    async def enqueue() -> None:
        await producer.initialize()
        assert await producer.enqueue(tickets) == 25

    anyio.run(enqueue)

    resources = {
        "batch_engine": engine,
        "rate_limiter": RateLimiterResource(
            url=redis_url, requests_per_minute=6_000, tokens_per_minute=1_000_000
        ),
    }
    defs = dg.Definitions.merge(yaml_defs, dg.Definitions(resources=resources))
    sensor = defs.resolve_sensor_def("tickets_worker_scaling")
    with dg.DagsterInstance.ephemeral() as instance:

        def tick(cursor: str | None) -> Any:
            with dg.build_sensor_context(
                instance=instance, cursor=cursor, resources={"batch_engine": engine}
            ) as context:
                return sensor(context)

        first = tick(None)
        assert isinstance(first, dg.SensorResult)
        assert len(first.run_requests or []) == 3  # ceil(25 / 10), within max_workers
        assert all(r.tags[WORKER_POOL_TAG] == "tickets" for r in first.run_requests or [])

        worker = defs.resolve_job_def("tickets_realtime_worker")
        result = worker.execute_in_process(instance=instance)
        assert result.success
        assert emulator.stats()["requests_by_endpoint"]["chat.completions"] == 25

        drained = tick(first.cursor)
        assert isinstance(drained, dg.SkipReason)
        assert "queue depth 0" in (drained.skip_message or "")

    async def counts() -> tuple[int, int]:
        found = await producer.counts()
        await producer.close()
        return found.open, found.done

    assert anyio.run(counts) == (0, 25)
