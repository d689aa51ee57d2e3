"""`batch-pipelines demo --pipeline reviews`: embed synthetic product reviews with a model run on this
machine (the `local` provider), through the same Dagster assets and sensor as any pipeline, then find
near-duplicate reviews with DuckDB's list_cosine_similarity over the results' embedding column."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import dagster as dg
import duckdb

from batch_pipelines.cli import invoked_as
from batch_pipelines.components.resources import BatchEngineResource
from batch_pipelines.demo.driver import PipelineDriver, load_component_spec
from batch_pipelines.demo.reviews_dataset import DEFAULT_REVIEWS_PER_PRODUCT, write_reviews_dataset
from batch_pipelines.providers.local import LocalProvider
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.query_command import write_rows
from batch_pipelines.storage.views import create_views
from batch_pipelines.workdir import make_workdir

REVIEWS_DEFS_YAML = Path(__file__).resolve().parent.parent / "defs" / "reviews" / "defs.yaml"
SIMILARITY_THRESHOLD = 0.985  # re-posts score above 0.99; distinct reviews of one product stay below 0.975


def near_duplicates_sql(layout: StorageLayout, threshold: float = SIMILARITY_THRESHOLD) -> str:
    """Pairs of reviews of the same product whose embeddings point the same way, most similar first."""
    inputs = str(layout.workdir / "inputs" / "reviews" / "*.parquet").replace("'", "''")
    return f"""
        WITH embedded AS (
            SELECT r.partition_key AS product, r.id, r.embedding, i.body
            FROM results r JOIN read_parquet('{inputs}') i ON i.review_id = r.id
            WHERE r.pipeline = 'reviews'
        )
        SELECT a.product, a.id AS review, b.id AS near_duplicate,
               round(list_cosine_similarity(a.embedding, b.embedding), 4) AS similarity,
               left(a.body, 60) AS review_text, left(b.body, 60) AS duplicate_text
        FROM embedded a JOIN embedded b ON a.product = b.product AND a.id < b.id
        WHERE list_cosine_similarity(a.embedding, b.embedding) >= {threshold}
        ORDER BY similarity DESC, review"""


@contextmanager
def review_catalog(layout: StorageLayout) -> Iterator[duckdb.DuckDBPyConnection]:
    """DuckDB with the results views that may also read the reviews' input files (for their text); the
    read-only catalog of `batch-pipelines query` opens the results tree alone."""
    with duckdb.connect() as connection:
        create_views(connection, layout)
        yield connection


def run_reviews_demo(
    workdir: Path, *, reviews_per_product: int = DEFAULT_REVIEWS_PER_PRODUCT, out: TextIO | None = None
) -> StorageLayout:
    stream = out if out is not None else sys.stdout

    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    make_workdir(workdir)
    dataset_path, dataset = write_reviews_dataset(
        workdir / "demo" / "reviews", reviews_per_product=reviews_per_product
    )
    say(f"working folder: {workdir}\ndataset: {dataset_path} ({dataset.frame.height} reviews)")
    dagster_home = workdir / "dagster_home"
    dagster_home.mkdir(exist_ok=True)
    instance_config = dagster_home / "dagster.yaml"
    if not instance_config.exists():
        instance_config.write_text("telemetry:\n  enabled: false\nrun_retries:\n  enabled: true\n")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    spec = load_component_spec(REVIEWS_DEFS_YAML)
    engine = BatchEngineResource(workdir=str(workdir))
    try:
        with dg.DagsterInstance.get() as instance:
            driver = PipelineDriver(spec, engine, instance, log=say, dagster_log_level="ERROR")
            for partition_key in driver.partition_keys():
                driver.submit(partition_key)
                say(f"submitted {partition_key}")
            say("embedding on this machine; the completion sensor collects each partition…")
            driver.collect_all(timeout_s=900)
    finally:
        LocalProvider(spec.model, work_dir=workdir).stop_worker()
    layout = StorageLayout.for_workdir(workdir, spec.results_root)
    with review_catalog(layout) as connection:
        cursor = connection.execute(
            "SELECT partition_key AS product, count(*) AS embedded, max(len(embedding)) AS dimensions, "
            "sum(input_tokens) AS tokens FROM results WHERE pipeline = 'reviews' GROUP BY ALL ORDER BY ALL"
        )
        say("\nEmbedded")
        write_rows([c[0] for c in cursor.description or []], cursor.fetchall(), "table", stream)
        cursor = connection.execute(near_duplicates_sql(layout))
        say(f"\nNear-duplicates (cosine similarity >= {SIMILARITY_THRESHOLD})")
        write_rows([c[0] for c in cursor.description or []], cursor.fetchall(), "table", stream)
    say(
        f'\nQuery it yourself: {invoked_as()} query --workdir {workdir} "SELECT id, embedding FROM results '
        "WHERE pipeline = 'reviews' LIMIT 3\""
    )
    return layout
