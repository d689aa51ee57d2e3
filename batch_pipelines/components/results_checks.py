"""The results asset's checks: unique ids, every input item accounted for, schema-valid responses, and a
dead-letter share within the pipeline's threshold."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import jsonschema
import polars as pl
import pyarrow.parquet as pq

from batch_pipelines.components.collection import PartitionTables
from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.scratch import scratch_folder
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.spilling import spilling_duckdb, sql_path

IDS_UNIQUE = "ids_unique"
ITEMS_ACCOUNTED_FOR = "every_input_item_accounted_for"
RESPONSES_MATCH_SCHEMA = "responses_match_schema"
DEAD_LETTER_SHARE = "dead_letter_share_within_threshold"

EXAMPLES = 10  # ids named in a check's metadata
# What the id checks read for a partition whose results file was never written.
NO_RESULTS = "(SELECT CAST(NULL AS VARCHAR) AS id WHERE false)"


def results_check_specs(spec: PipelineSpec, results_key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    specs = [
        dg.AssetCheckSpec(IDS_UNIQUE, asset=results_key, description="No item id appears twice."),
        dg.AssetCheckSpec(
            ITEMS_ACCOUNTED_FOR,
            asset=results_key,
            description="Every input item has a result or a dead letter (warns while a retry is in flight).",
        ),
        dg.AssetCheckSpec(
            DEAD_LETTER_SHARE,
            asset=results_key,
            description=(
                f"At most {spec.dead_letter_threshold:.1%} of the partition's items end in the dead-letter "
                "table (the pipeline's dead_letter_threshold)."
            ),
        ),
    ]
    if spec.response_schema is not None:
        specs.append(
            dg.AssetCheckSpec(
                RESPONSES_MATCH_SCHEMA,
                asset=results_key,
                description="Every response validates against the schema.",
            )
        )
    return specs


@dataclass(frozen=True)
class ResultsChecks:
    """The checks' outcomes, and the number of distinct input items they counted (for the metadata)."""

    results: list[dg.AssetCheckResult]
    input_items: int


@dataclass(frozen=True)
class IdSample:
    """How many ids a query found, and the smallest of them (at most EXAMPLES)."""

    count: int
    examples: list[str]


def evaluate_results_checks(
    spec: PipelineSpec,
    layout: StorageLayout,
    partition_key: str,
    tables: PartitionTables,
    retry_in_flight: int,
) -> ResultsChecks:
    """The results asset's checks over the partition's files. The id checks run in DuckDB within a fixed
    memory limit (spilling to a scratch folder) and the schema check streams the responses, so the checks
    take about the same memory at 1M rows as at 5M."""
    with scratch_folder(layout.workdir, ".checks-") as folder:
        results_file = layout.local_partition_file("results", spec.name, partition_key, folder)
        inputs_file = layout.local_partition_file("inputs", spec.name, partition_key, folder)
        if inputs_file is None:
            location = layout.partition_location("inputs", spec.name, partition_key)
            raise FileNotFoundError(f"no inputs partition {partition_key!r} of {spec.name!r} at {location}")
        inputs = f"read_parquet({sql_path(inputs_file)})"
        results = f"read_parquet({sql_path(results_file)})" if results_file else NO_RESULTS
        with spilling_duckdb(folder) as connection:
            connection.register("dead_letters", tables.dead_letters.select("id").to_arrow())
            duplicated = _duplicated_ids(connection, results)
            input_items = _distinct_input_ids(connection, inputs, spec.id_column)
            unaccounted = _unaccounted_ids(connection, inputs, spec.id_column, results)
        checks = [
            dg.AssetCheckResult(
                check_name=IDS_UNIQUE,
                passed=not duplicated.count,
                metadata={"duplicated_ids": duplicated.count, "examples": ", ".join(duplicated.examples)},
            ),
            items_accounted_for_check(tables, input_items, unaccounted, retry_in_flight),
            dead_letter_share_check(spec, tables.dead_letters, input_items),
        ]
        if spec.response_schema is not None:
            invalid = _invalid_responses(spec.response_schema, results_file)
            checks.append(
                dg.AssetCheckResult(
                    check_name=RESPONSES_MATCH_SCHEMA,
                    passed=not invalid.count,
                    metadata={"invalid_responses": invalid.count, "examples": ", ".join(invalid.examples)},
                )
            )
    return ResultsChecks(results=checks, input_items=input_items)


def items_accounted_for_check(
    tables: PartitionTables, input_items: int, unaccounted: IdSample, retry_in_flight: int
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=ITEMS_ACCOUNTED_FOR,
        passed=not unaccounted.count,
        severity=dg.AssetCheckSeverity.WARN if retry_in_flight else dg.AssetCheckSeverity.ERROR,
        metadata={
            "input_items": input_items,
            "results": tables.result_count,
            "dead_letters": tables.dead_letters.height,
            "unaccounted": unaccounted.count,
            "retry_in_flight": retry_in_flight,
            "examples": ", ".join(unaccounted.examples),
        },
    )


def partition_tables_metadata(tables: PartitionTables, input_items: int) -> dict[str, dg.MetadataValue]:
    """What a results materialization says about the files it wrote (batch and realtime alike)."""
    return {
        "dagster/row_count": dg.MetadataValue.int(tables.result_count),
        "path": dg.MetadataValue.path(tables.results_path),
        "dead_letters": dg.MetadataValue.int(tables.dead_letters.height),
        "dead_letter_share": dg.MetadataValue.float(
            dead_letter_share(tables.dead_letters.height, input_items)
        ),
        "partition_cost_usd": dg.MetadataValue.float(tables.cost_usd),
    }


def dead_letter_share(dead_letters: int, input_items: int) -> float:
    return dead_letters / input_items if input_items else 0.0


def dead_letter_share_check(
    spec: PipelineSpec, dead_letters: pl.DataFrame, input_items: int
) -> dg.AssetCheckResult:
    share = dead_letter_share(dead_letters.height, input_items)
    by_type = dead_letters.group_by("error_type").len().sort("len", descending=True).iter_rows()
    return dg.AssetCheckResult(
        check_name=DEAD_LETTER_SHARE,
        passed=share <= spec.dead_letter_threshold,
        metadata={
            "dead_letter_share": dg.MetadataValue.float(share),
            "threshold": dg.MetadataValue.float(spec.dead_letter_threshold),
            "dead_letters": dg.MetadataValue.int(dead_letters.height),
            "input_items": dg.MetadataValue.int(input_items),
            "by_error_type": ", ".join(f"{error_type}: {count}" for error_type, count in by_type),
        },
    )


def _duplicated_ids(connection: duckdb.DuckDBPyConnection, results: str) -> IdSample:
    return _id_sample(connection, f"SELECT id FROM {results} GROUP BY id HAVING count(*) > 1")


def _distinct_input_ids(connection: duckdb.DuckDBPyConnection, inputs: str, id_column: str) -> int:
    # (a null id counts as one item, as a polars `unique()` counted it)
    [(count,)] = connection.execute(
        f"SELECT count(*) FROM (SELECT DISTINCT {_input_id(id_column)} FROM {inputs})"
    ).fetchall()
    return int(count)


def _unaccounted_ids(
    connection: duckdb.DuckDBPyConnection, inputs: str, id_column: str, results: str
) -> IdSample:
    """Distinct input ids with neither a result nor a dead letter."""
    return _id_sample(
        connection,
        f"""
        SELECT input_ids.id FROM (SELECT DISTINCT {_input_id(id_column)} AS id FROM {inputs}) AS input_ids
        ANTI JOIN (SELECT id FROM {results} UNION ALL SELECT id FROM dead_letters) AS accounted
            ON input_ids.id = accounted.id
        WHERE input_ids.id IS NOT NULL
        """,
    )


def _id_sample(connection: duckdb.DuckDBPyConnection, ids_query: str) -> IdSample:
    """The count and the smallest ids of a query's `id` column; `min(id, n)` keeps only n of them."""
    [(count, smallest)] = connection.execute(
        f"SELECT count(*), min(id, {EXAMPLES}) FROM ({ids_query})"
    ).fetchall()
    return IdSample(count=int(count), examples=list(smallest or []))


def _input_id(id_column: str) -> str:
    """The input id column as text, as the results and dead letters hold it."""
    quoted = '"' + id_column.replace('"', '""') + '"'
    return f"CAST({quoted} AS VARCHAR)"


def _invalid_responses(schema: dict[str, object], results_file: Path | None) -> IdSample:
    """The ids whose response is missing, not JSON or not valid under the schema (the first few in file
    order), read a row group at a time."""
    if results_file is None:
        return IdSample(count=0, examples=[])
    validator = jsonschema.Draft202012Validator(schema)
    count = 0
    examples: list[str] = []
    for batch in pq.ParquetFile(results_file).iter_batches(columns=["id", "response"]):
        ids, responses = batch.column("id").to_pylist(), batch.column("response").to_pylist()
        for item_id, response in zip(ids, responses, strict=True):
            if _is_valid_response(validator, response):
                continue
            count += 1
            if len(examples) < EXAMPLES:
                examples.append(item_id)
    return IdSample(count=count, examples=examples)


def _is_valid_response(validator: jsonschema.Draft202012Validator, response: str | None) -> bool:
    if response is None:
        return False
    try:
        document = json.loads(response)
    except json.JSONDecodeError:
        return False
    return document is not None and bool(validator.is_valid(document))
