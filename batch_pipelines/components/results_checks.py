"""The results asset's checks: unique ids, every input item accounted for, schema-valid responses, and a
dead-letter share within the pipeline's threshold."""

from __future__ import annotations

import json

import dagster as dg
import jsonschema
import polars as pl

from batch_pipelines.components.collection import PartitionTables
from batch_pipelines.pipeline.spec import PipelineSpec

IDS_UNIQUE = "ids_unique"
ITEMS_ACCOUNTED_FOR = "every_input_item_accounted_for"
RESPONSES_MATCH_SCHEMA = "responses_match_schema"
DEAD_LETTER_SHARE = "dead_letter_share_within_threshold"


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


def evaluate_results_checks(
    spec: PipelineSpec,
    tables: PartitionTables,
    input_ids: pl.Series,
    retry_in_flight: int,
) -> list[dg.AssetCheckResult]:
    """The results asset's checks, over the files just written (scanned, never loaded whole)."""
    results, dead_letters = tables.results, tables.dead_letters
    duplicated = results.group_by("id").len().filter(pl.col("len") > 1).select("id").collect()["id"].to_list()
    checks = [
        dg.AssetCheckResult(
            check_name=IDS_UNIQUE,
            passed=not duplicated,
            metadata={"duplicated_ids": len(duplicated), "examples": ", ".join(sorted(duplicated)[:10])},
        )
    ]
    accounted = pl.concat([results.select("id").collect()["id"], dead_letters["id"]]).implode()
    missing = input_ids.filter(~input_ids.is_in(accounted)).sort().to_list()
    checks.append(
        dg.AssetCheckResult(
            check_name=ITEMS_ACCOUNTED_FOR,
            passed=not missing,
            severity=dg.AssetCheckSeverity.WARN if retry_in_flight else dg.AssetCheckSeverity.ERROR,
            metadata={
                "input_items": len(input_ids),
                "results": tables.result_count,
                "dead_letters": dead_letters.height,
                "unaccounted": len(missing),
                "retry_in_flight": retry_in_flight,
                "examples": ", ".join(missing[:10]),
            },
        )
    )
    checks.append(dead_letter_share_check(spec, dead_letters, len(input_ids)))
    if spec.response_schema is not None:
        invalid = _invalid_responses(spec.response_schema, results)
        checks.append(
            dg.AssetCheckResult(
                check_name=RESPONSES_MATCH_SCHEMA,
                passed=not invalid,
                metadata={"invalid_responses": len(invalid), "examples": ", ".join(invalid[:10])},
            )
        )
    return checks


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


def _invalid_responses(schema: dict[str, object], results: pl.LazyFrame) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    invalid = []
    for page in results.select("id", "response").collect_batches():
        for item_id, response in page.iter_rows():
            try:
                document = json.loads(response) if response is not None else None
            except json.JSONDecodeError:
                invalid.append(item_id)
                continue
            if document is None or not validator.is_valid(document):
                invalid.append(item_id)
    return invalid
