"""`batch-pipelines demo --pipeline reviews`: embeddings on this machine through Dagster, near-duplicates in
DuckDB. Needs the 'local' extra (skips without it locally, fails under CI=true)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from batch_pipelines.cli import main
from batch_pipelines.demo.reviews_dataset import generate_reviews
from batch_pipelines.demo.reviews_demo import near_duplicates_sql, review_catalog
from batch_pipelines.providers.local import resolve_model_path
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines_tests.local_model import TEST_MODEL, TEST_MODEL_DIMENSIONS, require_local_model

REVIEWS_PER_PRODUCT = 20


def test_reviews_are_embedded_through_dagster_and_near_duplicates_found_with_duckdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_local_model()
    from sentence_transformers import SentenceTransformer

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "unused"))  # restored after the test
    workdir = tmp_path / "work"
    arguments = ["demo", "--pipeline", "reviews", "--workdir", str(workdir)]
    assert main([*arguments, "--reviews-per-product", str(REVIEWS_PER_PRODUCT)]) == 0
    output = capsys.readouterr().out
    assert "Near-duplicates" in output

    results = pl.read_parquet(workdir / "results" / "reviews" / "*.parquet")
    inputs = pl.read_parquet(workdir / "inputs" / "reviews" / "*.parquet")
    assert results.schema["embedding"] == pl.List(pl.Float32)
    assert sorted(results["id"]) == sorted(inputs["review_id"])
    assert results["embedding"].list.len().unique().to_list() == [TEST_MODEL_DIMENSIONS]

    # The vectors round-trip exactly: each results row holds, bit for bit, the float32 vector the
    # model computed in the worker (its Parquet parts), and that is the model's own output for the text.
    parts = pl.read_parquet(sorted(workdir.rglob("output-*.parquet")))
    assert parts.schema["embedding"] == pl.Array(pl.Float32, TEST_MODEL_DIMENSIONS)
    stored = results.sort("id")
    computed = parts.filter(pl.col("custom_id").is_in(stored["id"].implode())).sort("custom_id")
    assert computed["custom_id"].to_list() == stored["id"].to_list()
    stored_vectors = np.stack(stored["embedding"].to_numpy())
    assert stored_vectors.dtype == np.float32
    assert np.array_equal(stored_vectors, computed["embedding"].to_numpy())
    bodies = dict(zip(inputs["review_id"], inputs["body"], strict=True))
    model = SentenceTransformer(str(resolve_model_path(TEST_MODEL)), device="cpu", local_files_only=True)
    expected = model.encode([bodies[key] for key in stored["id"]], convert_to_numpy=True)
    assert np.allclose(stored_vectors, expected, rtol=0, atol=1e-6)  # (passes pad differently)

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

    # DuckDB computes over the column as stored (FLOAT[]): its cosine similarities are numpy's.
    files = str(workdir / "results" / "reviews" / "*.parquet")
    with duckdb.connect() as connection:
        rows = connection.execute(
            f"""
            SELECT a.id, b.id, typeof(a.embedding), list_cosine_similarity(a.embedding, b.embedding)
            FROM read_parquet('{files}') a, read_parquet('{files}') b
            """
        ).fetchall()
    position = {key: number for number, key in enumerate(stored["id"])}
    unit = stored_vectors.astype(np.float64)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    similarities = unit @ unit.T
    assert len(rows) == len(position) ** 2 and {row[2] for row in rows} == {"FLOAT[]"}
    assert max(abs(value - similarities[position[a], position[b]]) for a, b, _kind, value in rows) < 1e-5

    with dg.DagsterInstance.local_temp(tempdir=str(workdir / "dagster_home")) as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name="reviews_results_job"))
        assert len(runs) == 3 and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
