"""`batch-pipelines demo --pipeline reviews`: embeddings on this machine through Dagster, near-duplicates in
DuckDB. Needs the 'local' extra (skips without it locally, fails under CI=true)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from batch_pipelines.cli import main
from batch_pipelines.demo.reviews_dataset import generate_reviews
from batch_pipelines.demo.reviews_demo import near_duplicates_sql, review_catalog
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines_tests.local_model import TEST_MODEL_DIMENSIONS, require_local_model

REVIEWS_PER_PRODUCT = 20


def test_reviews_are_embedded_through_dagster_and_near_duplicates_found_with_duckdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_local_model()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "unused"))  # restored after the test
    workdir = tmp_path / "work"
    arguments = ["demo", "--pipeline", "reviews", "--workdir", str(workdir)]
    assert main([*arguments, "--reviews-per-product", str(REVIEWS_PER_PRODUCT)]) == 0
    output = capsys.readouterr().out
    assert "Near-duplicates" in output

    results = pl.read_parquet(workdir / "results" / "reviews" / "*.parquet")
    inputs = pl.read_parquet(workdir / "inputs" / "reviews" / "*.parquet")
    assert results.schema["embedding"] == pl.List(pl.Float64)
    assert sorted(results["id"]) == sorted(inputs["review_id"])
    assert results["embedding"].list.len().unique().to_list() == [TEST_MODEL_DIMENSIONS]

    layout = StorageLayout.for_workdir(workdir)
    with review_catalog(layout) as connection:
        found = {
            tuple(row)
            for row in connection.execute(
                f"SELECT review, near_duplicate FROM ({near_duplicates_sql(layout)})"
            ).fetchall()
        }
    planted = {
        tuple(sorted(pair))
        for pair in generate_reviews(reviews_per_product=REVIEWS_PER_PRODUCT).near_duplicates
    }
    assert found == planted

    with dg.DagsterInstance.local_temp(tempdir=str(workdir / "dagster_home")) as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name="reviews_results_job"))
        assert len(runs) == 3 and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
