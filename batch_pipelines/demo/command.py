"""`batch-pipelines demo [--workdir DIR]`: the demo pipeline end to end, through Dagster, against the
local emulator, then a DuckDB summary of what landed."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import dagster as dg

from batch_pipelines.cli import invoked_as
from batch_pipelines.components.progress_metadata import (
    COST_FORECAST,
    EXPECTED_COST_USD,
    WORST_CASE_COST_USD,
)
from batch_pipelines.components.resources import BatchEngineResource, key_from_environment
from batch_pipelines.demo.dataset import DEFAULT_ROWS_PER_DAY, write_demo_dataset
from batch_pipelines.demo.driver import PipelineDriver, load_component_spec
from batch_pipelines.engine import BatchStore
from batch_pipelines.storage.jobs_snapshot import refresh_jobs_snapshot
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.query_command import write_rows
from batch_pipelines.storage.views import read_only_catalog
from batch_pipelines.workdir import make_workdir, resolve_workdir

DEMO_DEFS_YAML = Path(__file__).resolve().parent.parent / "defs" / "support_tickets" / "defs.yaml"
DEMO_API_KEY = "sk-demo-local-emulator"
DEMO_API_KEY_ENV = "BATCH_PIPELINES_DEMO_API_KEY"  # the demo's process puts its dummy key there
DEMO_TIME_SCALE = 0.3

SUMMARY_QUERIES = {
    "Per partition": """
        SELECT r.partition_key, count(*) AS answered,
               coalesce(max(d.dead), 0) AS dead_letters, coalesce(max(x.rejected), 0) AS rejected,
               sum(r.input_tokens) AS input_tokens, sum(r.output_tokens) AS output_tokens,
               round(sum(r.cost_usd), 6) AS cost_usd
        FROM results r
        LEFT JOIN (SELECT partition_key, count(*) AS dead FROM dead_letters GROUP BY ALL) d
            USING (partition_key)
        LEFT JOIN (SELECT partition_key, count(*) AS rejected FROM rejects GROUP BY ALL) x
            USING (partition_key)
        WHERE r.pipeline = 'support_tickets' GROUP BY r.partition_key ORDER BY r.partition_key""",
    "Categories": """
        SELECT category, count(*) AS tickets, round(avg(urgency), 2) AS mean_urgency
        FROM results WHERE pipeline = 'support_tickets' GROUP BY category ORDER BY tickets DESC""",
    "Cost": """
        SELECT count(*) AS jobs, round(sum(expected_usd), 6) AS expected_usd,
               round(sum(worst_case_usd), 6) AS worst_case_usd, round(sum(actual_usd), 6) AS actual_usd,
               round(sum(realtime_usd), 6) AS realtime_usd, round(sum(saved_usd), 6) AS saved_usd
        FROM costs WHERE pipeline = 'support_tickets'""",
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the demo pipeline end to end against the local emulator",
        description=(
            "Generate a week of synthetic support tickets, start the provider emulator, materialize every "
            "partition through Dagster (input, submission, sensor ticks, results) and summarise with DuckDB."
        ),
    )
    parser.add_argument("--workdir", default=None, help="working folder (default: $BATCH_PIPELINES_HOME)")
    parser.add_argument("--rows-per-day", type=int, default=DEFAULT_ROWS_PER_DAY, help=argparse.SUPPRESS)
    # Each job then spends a few seconds in progress, so the sensor ticks see (and print) it part-done.
    parser.add_argument("--time-scale", type=float, default=DEMO_TIME_SCALE, help=argparse.SUPPRESS)
    parser.add_argument(
        "--pipeline",
        choices=("support_tickets", "reviews"),
        default="support_tickets",
        help="support_tickets (chat, against the emulator) or reviews (embeddings on this machine, then "
        "near-duplicates with DuckDB; needs the 'local' extra)",
    )
    parser.add_argument("--reviews-per-product", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--data-only",
        action="store_true",
        help="only write the demo's input data under the working folder (demo/tickets/ or demo/reviews/), "
        "e.g. for a backfill from the Dagster UI; no emulator, no runs",
    )
    parser.set_defaults(handler=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    if args.data_only:
        write_demo_data(resolve_workdir(args.workdir), args)
        return 0
    if args.pipeline == "reviews":
        from batch_pipelines.demo.reviews_demo import run_reviews_demo

        extra = {"reviews_per_product": args.reviews_per_product} if args.reviews_per_product else {}
        run_reviews_demo(resolve_workdir(args.workdir), **extra)
        return 0
    try:
        run_demo(resolve_workdir(args.workdir), rows_per_day=args.rows_per_day, time_scale=args.time_scale)
    except DemoAlreadyRunningError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def submission_line(metadata: Mapping[str, Any]) -> str:
    """What a submission asked for and what it should cost: expected, worst case, and on what basis."""
    items = metadata["items_submitted"].value if "items_submitted" in metadata else 0
    line = f"{items} request(s)"
    if EXPECTED_COST_USD in metadata and WORST_CASE_COST_USD in metadata:
        line += (
            f", expected ${metadata[EXPECTED_COST_USD].value:.6f}, worst case "
            f"${metadata[WORST_CASE_COST_USD].value:.6f} ({metadata[COST_FORECAST].value})"
        )
    return line


def write_demo_data(workdir: Path, args: argparse.Namespace) -> Path:
    """The chosen demo's input file, written where its pipeline's `source` reads it."""
    make_workdir(workdir)
    if args.pipeline == "reviews":
        from batch_pipelines.demo.reviews_dataset import DEFAULT_REVIEWS_PER_PRODUCT, write_reviews_dataset

        per_product = args.reviews_per_product or DEFAULT_REVIEWS_PER_PRODUCT
        path, _ = write_reviews_dataset(workdir / "demo" / "reviews", reviews_per_product=per_product)
    else:
        path = write_demo_dataset(workdir / "demo" / "tickets", rows_per_day=args.rows_per_day)
    print(f"dataset: {path}")
    return path


def run_demo(
    workdir: Path, *, rows_per_day: int, time_scale: float, out: TextIO | None = None
) -> StorageLayout:
    stream = out if out is not None else sys.stdout

    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    make_workdir(workdir)
    with demo_lock(workdir):
        return _run_demo(workdir, rows_per_day=rows_per_day, time_scale=time_scale, say=say, stream=stream)


class DemoAlreadyRunningError(RuntimeError):
    """Another demo holds the working folder."""


@contextmanager
def demo_lock(workdir: Path) -> Iterator[None]:
    """One demo at a time per working folder. The kernel drops the lock when its holder dies, however it
    dies, so a demo started after a kill knows it is alone: what the killed one held in the store (a
    launch claimed, a job being prepared) waits for nobody and is released at once, not after its lease."""
    lock_path = workdir / "demo" / "run.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DemoAlreadyRunningError(f"another demo is running on {workdir}") from None
        store = BatchStore(StorageLayout.for_workdir(workdir).store_path)

        async def release() -> None:
            await store.initialize()
            await store.release_claims()
            await store.close()

        asyncio.run(release())
        yield


def _run_demo(
    workdir: Path, *, rows_per_day: int, time_scale: float, say: Callable[[str], None], stream: TextIO
) -> StorageLayout:
    from batch_pipelines.emulator.process import EmulatorProcess

    dataset = write_demo_dataset(workdir / "demo" / "tickets", rows_per_day=rows_per_day)
    say(f"working folder: {workdir}\ndataset: {dataset}")
    dagster_home = workdir / "dagster_home"
    dagster_home.mkdir(exist_ok=True)
    instance_config = dagster_home / "dagster.yaml"
    if not instance_config.exists():
        instance_config.write_text("telemetry:\n  enabled: false\nrun_retries:\n  enabled: true\n")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    spec = load_component_spec(DEMO_DEFS_YAML)
    # The emulator's files and batches live in the workdir: a demo run again after a kill finds them.
    emulator_state = workdir / "demo" / "emulator"
    with (
        EmulatorProcess(time_scale=time_scale, seed=7, state_dir=emulator_state) as emulator,
        dg.DagsterInstance.get() as instance,
    ):
        say(f"emulator: {emulator.url}")
        engine = BatchEngineResource(
            api_key=key_from_environment(DEMO_API_KEY_ENV, DEMO_API_KEY),
            base_url=emulator.openai_base_url,
            workdir=str(workdir),
        )
        driver = PipelineDriver(spec, engine, instance, log=say, dagster_log_level="ERROR")
        # One partition a night, as the nightly schedule runs them: each is collected before the next is
        # submitted, so every forecast after the first learns from the answers before it.
        for partition_key in driver.partition_keys():
            result = driver.submit(partition_key)
            submitted = result.asset_materializations_for_node(f"{spec.name}__submission")
            say(f"submitted {partition_key}: {submission_line(submitted[-1].metadata if submitted else {})}")
            driver.collect_all(timeout_s=600)
    layout = StorageLayout.for_workdir(workdir, spec.results_root)
    refresh_jobs_snapshot(layout)
    with read_only_catalog(layout) as connection:
        for title, sql in SUMMARY_QUERIES.items():
            cursor = connection.execute(sql)
            say(f"\n{title}")
            write_rows([column[0] for column in cursor.description or []], cursor.fetchall(), "table", stream)
    say(f'\nQuery it yourself: {invoked_as()} query --workdir {workdir} "SELECT * FROM results LIMIT 5"')
    return layout
