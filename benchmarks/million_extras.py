"""Side figures of benchmarks/million.py: JSON libraries on our lines, DuckDB over 10 result partitions per
Parquet layout, and the completion sensor with 1,000 open provider batches. One stage each, run in its
own process by million.py.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import msgspec
import orjson
import polars as pl
import pyarrow.parquet as pq
from million_data import MODEL, PIPELINE, SYSTEM_PROMPT, pipeline_declaration, ticket_text

from batch_pipelines.components import BatchEngineResource, key_from_environment
from batch_pipelines.demo.driver import PipelineDriver
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine import BatchManager, BatchRequest, BatchStore
from batch_pipelines.pipeline import parse_pipeline_spec
from batch_pipelines.providers import make_provider
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.views import create_views

JSON_LINES = 200_000
PARTITIONS = 10
OPEN_BATCHES = 1_000
API_KEY = "sk-million-extras"


def _best_of(repeat: int, work: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


# -- JSON libraries -----------------------------------------------------------------------------------


def _request_line(index: int) -> dict[str, Any]:
    return {
        "custom_id": f"t{index:08d}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": MODEL,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": ticket_text(index)},
            ],
            "max_tokens": 16,
        },
    }


def _response_line(index: int) -> bytes:
    body = {
        "id": f"chatcmpl-{index}",
        "object": "chat.completion",
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "bug"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 96, "completion_tokens": 2, "total_tokens": 98},
    }
    record = {
        "id": f"batch_req_{index}",
        "custom_id": f"t{index:08d}",
        "response": {"status_code": 200, "request_id": f"req_{index}", "body": body},
        "error": None,
    }
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def json_libraries_stage(state: dict[str, Any]) -> dict[str, Any]:
    """Encode request lines and decode result lines (to the fields we keep) with each library."""
    count = min(JSON_LINES, state["rows"])
    requests = [_request_line(index) for index in range(count)]
    responses = [_response_line(index) for index in range(count)]
    stdlib_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    msgspec_encoder = msgspec.json.Encoder()
    encoders: dict[str, Callable[[dict[str, Any]], bytes]] = {
        "json": lambda line: (stdlib_encode(line) + "\n").encode(),
        "orjson": lambda line: orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE),
        "msgspec": lambda line: msgspec_encoder.encode(line) + b"\n",
    }
    stdlib_decode = json.JSONDecoder().decode
    msgspec_decoder = msgspec.json.Decoder()
    decoders: dict[str, Callable[[bytes], Any]] = {
        "json": lambda line: stdlib_decode(line.decode()),
        "orjson": orjson.loads,
        "msgspec": msgspec_decoder.decode,
    }
    figures: dict[str, Any] = {}
    for name, encode in encoders.items():
        seconds = _best_of(3, lambda encode=encode: [encode(line) for line in requests])
        figures[f"encode_{name}_us"] = seconds / count * 1e6
    for name, decode in decoders.items():
        seconds = _best_of(3, lambda decode=decode: [decode(line) for line in responses])
        figures[f"decode_{name}_us"] = seconds / count * 1e6
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "output.jsonl"
        path.write_bytes(b"".join(responses))
        seconds = _best_of(3, lambda: pl.read_ndjson(path))
        figures["decode_polars_read_ndjson_us"] = seconds / count * 1e6
    for side in ("encode", "decode"):
        timings = {k: v for k, v in figures.items() if k.startswith(side)}
        figures[f"{side}_winner"] = min(timings, key=timings.__getitem__)
    return figures


# -- DuckDB over the results tree -------------------------------------------------------------------------


def _results_partition(partition: int, rows: int) -> pl.DataFrame:
    index = pl.int_range(0, rows, eager=True)
    categories = pl.Series(["billing", "bug", "account", "feature", "other"])
    return pl.DataFrame(
        {
            "pipeline": pl.repeat(PIPELINE, rows, eager=True),
            "partition_key": pl.repeat(f"p{partition:02d}", rows, eager=True),
            "id": "t" + index.cast(pl.String).str.zfill(8),
            "response": categories.gather(index % 5),
            "input_tokens": 80 + index % 40,
            "output_tokens": pl.repeat(2, rows, eager=True, dtype=pl.Int64),
            "cost_usd": (80 + index % 40) * 0.075e-6 + 2 * 0.3e-6,
            "attempt": pl.repeat(1, rows, eager=True, dtype=pl.Int64),
            "provider_batch_id": "batch_" + (index // 50_000).cast(pl.String),
            "job_id": pl.repeat(f"{PIPELINE}.p{partition:02d}.0123456789ab", rows, eager=True),
            "request_hash": index.hash(partition).cast(pl.String).str.zfill(20),
            "spec_version": pl.repeat("v1", rows, eager=True),
        }
    )


LAYOUTS: dict[str, dict[str, Any]] = {
    "polars default (zstd)": {},
    "zstd, 128k-row groups": {"compression": "zstd", "row_group_size": 131_072},
    "snappy": {"compression": "snappy"},
}
QUERIES = {
    "group_by_count": "SELECT partition_key, response, count(*) FROM results GROUP BY ALL",
    "cost_sum": "SELECT sum(cost_usd) FROM results",
}


def duckdb_layout_stage(state: dict[str, Any]) -> dict[str, Any]:
    rows = state["rows"]
    figures: dict[str, Any] = {"partitions": PARTITIONS, "rows_per_partition": rows}
    for label, options in LAYOUTS.items():
        with tempfile.TemporaryDirectory(dir=state["workdir"]) as folder:
            layout = StorageLayout.for_workdir(Path(folder))
            target = layout.table_root("results") / PIPELINE
            target.mkdir(parents=True)
            for partition in range(PARTITIONS):
                _results_partition(partition, rows).write_parquet(
                    target / f"p{partition:02d}.parquet", **options
                )
            first = pq.ParquetFile(target / "p00.parquet").metadata
            size_mb = sum(path.stat().st_size for path in target.iterdir()) / PARTITIONS / 2**20
            line = [f"{size_mb:.1f} MB/file", f"{first.num_row_groups} row groups"]
            line.append(first.row_group(0).column(0).compression.lower())
            with duckdb.connect() as connection:
                create_views(connection, layout)
                for name, sql in QUERIES.items():
                    seconds = _best_of(3, lambda sql=sql: connection.execute(sql).fetchall())
                    line.append(f"{name} {seconds:.3f} s")
            figures[label] = ", ".join(line)
            print(f"    {label}: {figures[label]}", flush=True)
    return figures


# -- the completion sensor with 1,000 open provider batches ------------------------------------------------


def sensor_tick_stage(state: dict[str, Any]) -> dict[str, Any]:
    """1,000 one-request jobs (one provider batch each) that stay open; one tick at the default page size,
    and one refreshing every job at once."""
    spec = parse_pipeline_spec(pipeline_declaration())
    workdir = Path(state["workdir"]) / "sensor"
    layout = StorageLayout.for_workdir(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    open_batches = min(OPEN_BATCHES, state["rows"] // 10)
    figures: dict[str, Any] = {"open_batches": open_batches}
    with EmulatorProcess(time_scale=1000.0, api_keys=[API_KEY]) as emulator:
        base_url = f"{emulator.url}/v1"

        async def submit_all() -> None:
            provider = make_provider("openai", model=MODEL, base_url=base_url, api_key=API_KEY)
            store = BatchStore(layout.store_path)
            manager = BatchManager(provider, store)
            try:
                for number in range(open_batches):
                    request = BatchRequest(id=f"r{number}", messages=[{"role": "user", "content": "hello"}])
                    await manager.submit(
                        [request],
                        job_id=f"{PIPELINE}.k{number:04d}.0",
                        metadata={"pipeline": PIPELINE, "partition_key": f"k{number:04d}"},
                    )
            finally:
                await provider.aclose()
                await store.close()

        started = time.perf_counter()
        asyncio.run(submit_all())
        figures["submit_jobs_s"] = time.perf_counter() - started
        for page_size in (50, open_batches):
            engine = BatchEngineResource(
                api_key=key_from_environment("BATCH_PIPELINES_BENCHMARK_API_KEY", API_KEY),
                base_url=base_url,
                workdir=str(workdir),
                sensor_page_size=page_size,
            )
            with dg.DagsterInstance.ephemeral() as instance:
                driver = PipelineDriver(spec, engine, instance, log=lambda _line: None)
                before = emulator.stats()["requests_served"]
                started = time.perf_counter()
                result = driver.tick()
                took = time.perf_counter() - started
                calls = emulator.stats()["requests_served"] - before
                assert not result.run_requests, "the jobs were meant to stay open"
                figures[f"tick_page{page_size}_s"] = took
                figures[f"tick_page{page_size}_provider_calls"] = calls
                figures[f"tick_page{page_size}_jobs_refreshed"] = len(result.asset_events)
    return figures
