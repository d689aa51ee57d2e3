"""The results checks over a partition's files as written: which ids they name, how they count input items."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl

from batch_pipelines.components.collection import partition_tables
from batch_pipelines.components.results_checks import (
    DEAD_LETTER_SHARE,
    IDS_UNIQUE,
    ITEMS_ACCOUNTED_FOR,
    RESPONSES_MATCH_SCHEMA,
    ResultsChecks,
    evaluate_results_checks,
)
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.storage.tables import DEAD_LETTERS_SCHEMA, RESULTS_SCHEMA
from batch_pipelines_tests.components.conftest import ticket_spec

DAY = "2026-11-02"


def result_rows(ids: list[str], response: str = '{"category": "billing", "urgency": 2}') -> pl.DataFrame:
    rows = [
        {
            "pipeline": "tickets",
            "partition_key": DAY,
            "id": item_id,
            "response": response,
            "input_tokens": 10,
            "output_tokens": 5,
            "cost_usd": 0.001,
            "attempt": 1,
            "provider_batch_id": "batch_1",
            "job_id": "job_1",
            "request_hash": f"h-{item_id}",
            "spec_version": "v1",
        }
        for item_id in ids
    ]
    return pl.DataFrame(rows, schema=RESULTS_SCHEMA)


def dead_letter_rows(ids: list[str]) -> pl.DataFrame:
    rows = [
        {
            "pipeline": "tickets",
            "partition_key": DAY,
            "id": item_id,
            "error_type": "invalid_request",
            "error_message": "rejected",
            "transient": False,
            "attempt": 1,
            "job_id": "job_1",
            "request_hash": f"h-{item_id}",
        }
        for item_id in ids
    ]
    return pl.DataFrame(rows, schema=DEAD_LETTERS_SCHEMA)


def run_checks(
    workdir: Path,
    input_ids: pl.Series,
    results: pl.DataFrame,
    dead_letters: list[str],
    retry_in_flight: int = 0,
) -> ResultsChecks:
    spec = ticket_spec()
    layout = StorageLayout.for_workdir(workdir)
    layout.write_partition(pl.DataFrame({spec.id_column: input_ids}), "inputs", spec.name, DAY)
    layout.write_partition(results, "results", spec.name, DAY)
    layout.write_partition(dead_letter_rows(dead_letters), "dead_letters", spec.name, DAY)
    tables = partition_tables(spec, layout, DAY)
    return evaluate_results_checks(spec, layout, DAY, tables, retry_in_flight)


def by_name(checks: ResultsChecks) -> dict[str | None, dg.AssetCheckResult]:
    return {check.check_name: check for check in checks.results}


def metadata(check: dg.AssetCheckResult) -> dict[str, object]:
    return {name: getattr(value, "value", value) for name, value in check.metadata.items()}


def test_a_complete_partition_passes_and_counts_its_distinct_input_items(tmp_path: Path) -> None:
    ids = [f"t{index}" for index in range(40)]
    checks = run_checks(tmp_path, pl.Series([*ids, "t3"]), result_rows(ids[:39]), dead_letters=ids[39:])

    assert checks.input_items == 40  # an id listed twice in the input is one item
    assert {check.check_name: check.passed for check in checks.results} == {
        IDS_UNIQUE: True,
        ITEMS_ACCOUNTED_FOR: True,
        DEAD_LETTER_SHARE: True,
        RESPONSES_MATCH_SCHEMA: True,
    }
    assert metadata(by_name(checks)[ITEMS_ACCOUNTED_FOR]) == {
        "input_items": 40,
        "results": 39,
        "dead_letters": 1,
        "unaccounted": 0,
        "retry_in_flight": 0,
        "examples": "",
    }
    assert metadata(by_name(checks)[IDS_UNIQUE]) == {"duplicated_ids": 0, "examples": ""}


def test_duplicated_result_ids_are_counted_and_the_smallest_ten_named(tmp_path: Path) -> None:
    ids = [f"t{index:02d}" for index in range(30)]
    twice = ids[::-1][:12]  # t29 … t18, in no useful order in the file
    checks = run_checks(tmp_path, pl.Series(ids), result_rows([*ids, *twice]), dead_letters=[])

    ids_unique = by_name(checks)[IDS_UNIQUE]
    assert not ids_unique.passed
    assert metadata(ids_unique) == {
        "duplicated_ids": 12,
        "examples": ", ".join(f"t{index}" for index in range(18, 28)),
    }


def test_unaccounted_items_are_counted_and_the_smallest_ten_named_as_text(tmp_path: Path) -> None:
    """Integer input ids are compared with the results' text ids, and named in text order."""
    answered, dead = [str(index) for index in range(0, 40, 2)], ["1", "3"]
    retry_in_flight = 7
    checks = run_checks(tmp_path, pl.Series(range(40)), result_rows(answered), dead, retry_in_flight)

    accounted_for = by_name(checks)[ITEMS_ACCOUNTED_FOR]
    missing = sorted(str(index) for index in range(5, 40, 2))
    assert not accounted_for.passed
    assert accounted_for.severity == dg.AssetCheckSeverity.WARN  # a retry may still answer them
    assert metadata(accounted_for) == {
        "input_items": 40,
        "results": 20,
        "dead_letters": 2,
        "unaccounted": 18,
        "retry_in_flight": retry_in_flight,
        "examples": ", ".join(missing[:10]),
    }
    assert missing[:3] == ["11", "13", "15"]  # (text order, as the examples have always been sorted)


def test_responses_that_do_not_match_the_schema_are_named_in_file_order(tmp_path: Path) -> None:
    valid = result_rows([f"ok{index}" for index in range(5)])
    invalid_ids = [f"bad{index:02d}" for index in range(12, 0, -1)]
    invalid = result_rows(invalid_ids, response=json.dumps({"category": "billing"}))
    checks = run_checks(
        tmp_path, pl.concat([valid, invalid])["id"], pl.concat([valid, invalid]), dead_letters=[]
    )

    matches_schema = by_name(checks)[RESPONSES_MATCH_SCHEMA]
    assert not matches_schema.passed
    assert metadata(matches_schema) == {"invalid_responses": 12, "examples": ", ".join(invalid_ids[:10])}
