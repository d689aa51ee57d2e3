"""Reading one partition of a pipeline's source with polars and splitting usable rows from rejects.

A usable row has a non-null id that appears once in the partition, a value for every column the prompt
templates use, text that was valid UTF-8 in its file, and a prompt that fits the model's context window.
Everything else goes to the rejects table with the reason; it never sinks the partition. Missing columns,
on the other hand, are a declaration error and fail loudly, as does a file that cannot be read.

Files are scanned lazily and collected with polars' streaming engine, so only the partition's rows are
held in memory, however large the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from batch_pipelines.pipeline.context_windows import CHARS_PER_TOKEN, context_window
from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.storage.tables import REJECTS_SCHEMA

# Providers that restrict request ids (a batch line's custom_id); a row whose id breaks the rule is rejected
# rather than failing the whole submission.
PROVIDER_ID_RULES = {"anthropic": (r"^[a-zA-Z0-9_-]{1,64}$", "1-64 letters, digits, '_' or '-'")}
# Where each row came from (file name, 1-based line or row), to name it in a reject; dropped afterwards.
SOURCE_FILE = "_source_file"
SOURCE_LINE = "_source_line"
# CSV bytes that are not UTF-8 are read as U+FFFD so one bad row cannot fail the whole file.
NOT_UTF8 = "\ufffd"
DEFAULT_ANSWER_TOKENS = 256


class SourceError(ValueError):
    """The source cannot be read as declared (no files, missing column, bad query)."""


@dataclass(frozen=True)
class PartitionRows:
    accepted: pl.DataFrame
    rejects: pl.DataFrame


def load_source(spec: PipelineSpec, base_dir: Path) -> pl.LazyFrame:
    source = spec.source
    if source.sql is not None:
        try:
            with duckdb.connect() as connection:
                connection.execute(f"SET file_search_path = '{base_dir}'")
                frame = connection.sql(source.sql).pl()
        except duckdb.Error as error:
            raise SourceError(f"pipeline {spec.name!r}: field 'source.sql' failed: {error}") from None
        return frame.lazy()
    assert source.path is not None
    pattern = Path(source.path) if Path(source.path).is_absolute() else base_dir / source.path
    files = sorted(Path(pattern.anchor).glob(str(pattern.relative_to(pattern.anchor))))
    if not files:
        raise SourceError(f"pipeline {spec.name!r}: field 'source.path' matches no file: {pattern}")
    return pl.concat([_scan(file, source.file_format) for file in files], how="diagonal_relaxed")


def _scan(file: Path, file_format: str | None) -> pl.LazyFrame:
    if file_format == "csv":
        frame, first_line = pl.scan_csv(file, encoding="utf8-lossy"), 2  # line 1 is the header
    elif file_format == "jsonl":
        frame, first_line = pl.scan_ndjson(file), 1
    else:
        frame, first_line = pl.scan_parquet(file), 1
    return frame.with_row_index(SOURCE_LINE, offset=first_line).with_columns(
        pl.lit(file.name).alias(SOURCE_FILE)
    )


def partition_filter(spec: PipelineSpec, partition_key: str, schema: pl.Schema) -> pl.Expr:
    column = spec.partitions.column
    if spec.partitions.static is not None:
        return pl.col(column).cast(pl.String) == partition_key
    day = date.fromisoformat(partition_key)
    start = datetime.combine(day, datetime.min.time())
    end = start + timedelta(days=1)
    dtype = schema[column]
    timestamps = pl.col(column)
    if dtype == pl.String:
        timestamps = timestamps.str.to_datetime(strict=False)
    elif dtype == pl.Date:
        timestamps = timestamps.cast(pl.Datetime)
    elif isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        timezone = spec.partitions.daily.timezone if spec.partitions.daily else "UTC"
        timestamps = timestamps.dt.convert_time_zone(timezone).dt.replace_time_zone(None)
    return (timestamps >= start) & (timestamps < end)


def read_partition(spec: PipelineSpec, partition_key: str, base_dir: Path) -> PartitionRows:
    lazy = load_source(spec, base_dir)
    schema = lazy.collect_schema()
    needed = [spec.id_column, spec.partitions.column, *spec.prompt.columns]
    missing = [column for column in dict.fromkeys(needed) if column not in schema]
    if missing:
        raise SourceError(
            f"pipeline {spec.name!r}: the source has no column(s) {', '.join(missing)} "
            f"(used by id_column / partitions / prompt); it has: {', '.join(schema.names())}"
        )
    try:
        rows = lazy.filter(partition_filter(spec, partition_key, schema)).collect(engine="streaming")
    except (pl.exceptions.PolarsError, OSError) as error:
        where = spec.source.path or "the query in 'source.sql'"
        raise SourceError(f"pipeline {spec.name!r}: reading {where} failed: {error}") from None
    return split_rejects(spec, partition_key, rows)


def split_rejects(spec: PipelineSpec, partition_key: str, rows: pl.DataFrame) -> PartitionRows:
    id_text = pl.col(spec.id_column).cast(pl.String)
    reasons: list[pl.Expr] = [
        pl.when(pl.col(spec.id_column).is_null()).then(pl.lit(f"id column '{spec.id_column}' is null")),
        pl.when(id_text.is_duplicated() & id_text.is_not_null()).then(
            pl.lit(f"id is not unique in column '{spec.id_column}'")
        ),
        *(
            pl.when(pl.col(column).is_null()).then(pl.lit(f"prompt column '{column}' is null"))
            for column in spec.prompt.columns
        ),
    ]
    reasons.extend(_not_utf8_reasons(spec, rows))
    reasons.extend(_context_window_reasons(spec))
    if spec.provider in PROVIDER_ID_RULES:
        pattern, wording = PROVIDER_ID_RULES[spec.provider]
        reasons.append(
            pl.when(id_text.is_not_null() & ~id_text.str.contains(pattern)).then(
                pl.lit(f"id is not usable by {spec.provider} ({wording})")
            )
        )
    joined = pl.concat_str(reasons, separator="; ", ignore_nulls=True)
    checked = rows.with_row_index("row_number").with_columns(
        pl.when(joined != "").then(joined).alias("_reason")
    )
    rejected = checked.filter(pl.col("_reason").is_not_null())
    rejects = rejected.select(
        pl.lit(spec.name).alias("pipeline"),
        pl.lit(partition_key).alias("partition_key"),
        pl.col("row_number").cast(pl.Int64),
        id_text.alias("id"),
        pl.col("_reason").alias("reason"),
    ).cast(REJECTS_SCHEMA)  # type: ignore[arg-type]
    accepted = (
        checked.filter(pl.col("_reason").is_null())
        .drop("row_number", "_reason", SOURCE_FILE, SOURCE_LINE, strict=False)
        .with_columns(id_text.alias(spec.id_column))
    )
    return PartitionRows(accepted=accepted, rejects=rejects)


def _not_utf8_reasons(spec: PipelineSpec, rows: pl.DataFrame) -> list[pl.Expr]:
    if SOURCE_FILE not in rows.columns:
        return []
    where = pl.format("(file {}, line {})", pl.col(SOURCE_FILE), pl.col(SOURCE_LINE))
    return [
        pl.when(pl.col(column).str.contains(NOT_UTF8, literal=True)).then(
            pl.format("column '{}' holds bytes that are not valid UTF-8 {}", pl.lit(column), where)
        )
        for column in dict.fromkeys([spec.id_column, *spec.prompt.columns])
        if rows.schema[column] == pl.String
    ]


def _context_window_reasons(spec: PipelineSpec) -> list[pl.Expr]:
    window = context_window(spec.model)
    if window is None:
        return []
    template_chars = sum(len(text) for text in (spec.prompt.system, spec.prompt.user) if text)
    value_chars = pl.sum_horizontal(
        [pl.col(column).cast(pl.String).str.len_chars().fill_null(0) for column in spec.prompt.columns]
    )
    answer_tokens = int(spec.params.get("max_tokens") or DEFAULT_ANSWER_TOKENS)
    prompt_tokens = ((value_chars + template_chars) / CHARS_PER_TOKEN).ceil().cast(pl.Int64)
    return [
        pl.when(prompt_tokens + answer_tokens > window).then(
            pl.format(
                "prompt of about {} tokens plus {} answer tokens exceeds the {} context window ({} tokens)",
                prompt_tokens,
                pl.lit(answer_tokens),
                pl.lit(spec.model),
                pl.lit(window),
            )
        )
    ]
