"""Our side of benchmarks/million.py: the partition through Dagster (input, submission, completion sensor
ticks, results run, DuckDB), and the same requests through the engine called directly.

Each function is one stage, run in its own process by million.py; it returns extra figures to print.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from million_data import MAX_TOKENS, PARTITION, SYSTEM_PROMPT, pipeline_declaration

from batch_pipelines.components import BatchEngineResource, key_from_environment
from batch_pipelines.components.factory import submit_job_name
from batch_pipelines.components.input_asset import input_key
from batch_pipelines.components.submission_asset import submission_key
from batch_pipelines.demo.driver import PipelineDriver
from batch_pipelines.engine import BatchManager, BatchRequest, BatchStore
from batch_pipelines.pipeline import PipelineSpec, parse_pipeline_spec
from batch_pipelines.providers import make_provider
from batch_pipelines.storage.parquet_files import write_parquet_atomic

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
ENQUEUED_TOKENS = 10**13  # a high usage tier: the pool never holds a batch back (the baseline ignores it)
POLL_PAUSE_S = 0.1
DIRECT_JOB = "direct.p0"


def _spec() -> PipelineSpec:
    return parse_pipeline_spec(pipeline_declaration())


def _engine_resource(state: dict[str, Any]) -> BatchEngineResource:
    return BatchEngineResource(
        api_key=key_from_environment("BATCH_PIPELINES_BENCHMARK_API_KEY", state["api_key"]),
        base_url=state["base_url"],
        workdir=state["workdir"],
        enqueued_token_limit=ENQUEUED_TOKENS,
    )


@contextmanager
def _driver(state: dict[str, Any]) -> Iterator[PipelineDriver]:
    with dg.DagsterInstance.get() as instance:
        yield PipelineDriver(
            _spec(), _engine_resource(state), instance, log=lambda _line: None, dagster_log_level="ERROR"
        )


def _materialize(state: dict[str, Any], key: dg.AssetKey) -> None:
    with _driver(state) as driver:
        job = driver.defs.resolve_job_def(submit_job_name(driver.spec))
        result = job.execute_in_process(
            partition_key=PARTITION, instance=driver.instance, asset_selection=[key], run_config=QUIET
        )
        assert result.success, f"materializing {key.to_user_string()} failed"


def input_stage(state: dict[str, Any]) -> dict[str, Any]:
    _materialize(state, input_key(_spec()))
    return {}


def submission_stage(state: dict[str, Any]) -> dict[str, Any]:
    _materialize(state, submission_key(_spec()))
    return {}


def completion_stage(state: dict[str, Any]) -> dict[str, Any]:
    """Sensor ticks until the partition's job has ended; the run requests go to the results stage."""
    with _driver(state) as driver:
        ticks, tick_seconds, longest = 0, 0.0, 0.0
        while True:
            started = time.perf_counter()
            requests = driver.tick().run_requests or []
            took = time.perf_counter() - started
            ticks, tick_seconds, longest = ticks + 1, tick_seconds + took, max(longest, took)
            if requests:
                state["run_requests"] = [
                    {"run_key": r.run_key, "partition_key": r.partition_key, "tags": dict(r.tags)}
                    for r in requests
                ]
                return {"ticks": ticks, "tick_s_total": tick_seconds, "tick_s_max": longest}
            time.sleep(POLL_PAUSE_S)


def results_stage(state: dict[str, Any]) -> dict[str, Any]:
    with _driver(state) as driver:
        for request in state["run_requests"]:
            outcome = driver.launch(
                dg.RunRequest(
                    run_key=request["run_key"], partition_key=request["partition_key"], tags=request["tags"]
                )
            )
            assert outcome is not None and outcome.success, "the results run failed"
    return {}


# -- the engine called directly, for the Dagster-layer overhead -------------------------------------------


def _direct_manager(state: dict[str, Any]) -> tuple[BatchManager, BatchStore]:
    provider = make_provider(
        "openai", model=_spec().model, base_url=state["base_url"], api_key=state["api_key"]
    )
    provider.limits = replace(provider.limits, max_enqueued_tokens=ENQUEUED_TOKENS)
    store = BatchStore(Path(state["workdir"]) / "direct.db")
    return BatchManager(provider, store), store


def _direct_requests(path: Path) -> Iterator[BatchRequest]:
    frame = pl.read_parquet(path, columns=["ticket_id", "text"])
    for ticket_id, text in frame.iter_rows():
        yield BatchRequest(
            id=ticket_id,
            messages=[{"role": "user", "content": text}],
            system=SYSTEM_PROMPT,
            max_tokens=MAX_TOKENS,
        )


def engine_submit_stage(state: dict[str, Any]) -> dict[str, Any]:
    async def submit() -> None:
        manager, store = _direct_manager(state)
        try:
            await manager.submit(_direct_requests(Path(state["data_path"])), job_id=DIRECT_JOB)
        finally:
            await manager.provider.aclose()
            await store.close()

    asyncio.run(submit())
    return {}


def engine_completion_stage(state: dict[str, Any]) -> dict[str, Any]:
    async def wait() -> int:
        manager, store = _direct_manager(state)
        polls = 0
        try:
            while not (await manager.refresh(DIRECT_JOB)).status.is_terminal:
                polls += 1
                await asyncio.sleep(POLL_PAUSE_S)
        finally:
            await manager.provider.aclose()
            await store.close()
        return polls + 1

    return {"polls": asyncio.run(wait())}


def engine_results_stage(state: dict[str, Any]) -> dict[str, Any]:
    columns: dict[str, list[Any]] = {
        name: [] for name in ("id", "response", "input_tokens", "output_tokens", "cost_usd")
    }

    async def collect() -> None:
        manager, store = _direct_manager(state)
        try:
            async for result in manager.iter_results(DIRECT_JOB):
                columns["id"].append(result.id)
                columns["response"].append(result.response)
                columns["input_tokens"].append(result.input_tokens)
                columns["output_tokens"].append(result.output_tokens)
                columns["cost_usd"].append(result.cost_usd)
        finally:
            await manager.provider.aclose()
            await store.close()

    asyncio.run(collect())
    write_parquet_atomic(pl.DataFrame(columns), Path(state["workdir"]) / "direct_results.parquet")
    return {"result_rows": len(columns["id"])}
