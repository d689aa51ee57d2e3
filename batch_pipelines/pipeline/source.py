"""Reading one partition of a pipeline's source with polars and splitting usable rows from rejects.

A usable row has a non-null id that appears once in the partition, a value for every column the prompt
templates use, text that was valid UTF-8 in its file, and a prompt that fits the model's context window.
Everything else goes to the rejects table with the reason; it never sinks the partition. Missing columns,
on the other hand, are a declaration error and fail loudly, as does a file that cannot be read.

The partition is read and split a batch at a time (`split_partition`), so it is never held whole however
large the file. Duplicate ids are found by a first pass that copies the id column to a file and groups it
there with DuckDB, spilling to disk (`duplicated_ids`), keeping only the ids seen more than once; the
second pass checks each batch against that list. polars' own CSV reader holds a large share of the file
in memory (and reading bytes that are not UTF-8 lossily needs it), so CSV files are read here in blocks
(`csv_blocks`) and the partition's rows staged to Parquet first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from batch_pipelines.pipeline.context_windows import CHARS_PER_TOKEN, context_window
from batch_pipelines.pipeline.spec import PipelineSpec
from batch_pipelines.scratch import scratch_folder
from batch_pipelines.storage.spilling import spilling_duckdb, sql_path
from batch_pipelines.storage.tables import REJECTS_SCHEMA

# Providers that restrict request ids (a batch line's custom_id); a row whose id breaks the rule is rejected
# rather than failing the whole submission.
PROVIDER_ID_RULES = {"anthropic": (r"^[a-zA-Z0-9_-]{1,64}$", "1-64 letters, digits, '_' or '-'")}
# Where each row came from (file name, 1-based line or row), to name it in a reject; dropped afterwards.
SOURCE_FILE = "_source_file"
SOURCE_LINE = "_source_line"
# CSV bytes that are not UTF-8 are read as this noncharacter (Unicode keeps U+FDD0 for a program's
# internal use), so one bad row cannot fail the whole file and the rows holding it are rejected, while a
# genuine U+FFFD in the text (what an upstream lossy decode leaves) is kept like any other character.
NOT_UTF8 = "\ufdd0"
NOT_UTF8_BYTES = re.compile("[\udc80-\udcff]+")
DEFAULT_ANSWER_TOKENS = 256
# How much of a CSV file is parsed at once; memory while reading one is a few of these.
CSV_BLOCK_BYTES = 8 * 1024 * 1024
# Sources bigger than this have each filtered batch's strings copied out of the batch they came from
# (`compact`); below it the copy costs more time than the memory it saves.
COMPACT_ABOVE_BYTES = 256 * 1024 * 1024
# Rows per batch read from a source other than CSV (CSV batches are its blocks).
BATCH_ROWS = 65_536
ROW_NUMBER = "row_number"
REJECTED = "_rejected"


class SourceError(ValueError):
    """The source cannot be read as declared (no files, missing column, bad query)."""


@dataclass(frozen=True)
class PartitionRows:
    accepted: pl.DataFrame
    rejects: pl.DataFrame


def load_source(spec: PipelineSpec, base_dir: Path) -> pl.LazyFrame:
    """The whole source, lazily (a CSV file through polars' own reader: for its schema, not for rows)."""
    source = spec.source
    if source.sql is not None:
        try:
            with duckdb.connect() as connection:
                connection.execute(f"SET file_search_path = '{base_dir}'")
                frame = connection.sql(source.sql).pl()
        except duckdb.Error as error:
            raise SourceError(f"pipeline {spec.name!r}: field 'source.sql' failed: {error}") from None
        return frame.lazy()
    return pl.concat(
        [_scan(file, source.file_format) for file in source_files(spec, base_dir)], how="diagonal_relaxed"
    )


def source_files(spec: PipelineSpec, base_dir: Path) -> list[Path]:
    assert spec.source.path is not None
    pattern = Path(spec.source.path) if Path(spec.source.path).is_absolute() else base_dir / spec.source.path
    files = sorted(Path(pattern.anchor).glob(str(pattern.relative_to(pattern.anchor))))
    if not files:
        raise SourceError(f"pipeline {spec.name!r}: field 'source.path' matches no file: {pattern}")
    return files


def source_bytes(spec: PipelineSpec, base_dir: Path) -> int:
    """The size of the source's files (0 for a query: its rows are in memory already)."""
    if spec.source.sql is not None:
        return 0
    return sum(file.stat().st_size for file in source_files(spec, base_dir))


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
    """The partition's rows, and, for daily partitions, the rows whose partition value is no date or time
    (they belong to no partition: every partition's run rejects them, see `_undated_checks`)."""
    undated = undated_rows(spec, schema)
    in_partition = _in_partition(spec, partition_key, schema)
    return in_partition if undated is None else in_partition | undated


def undated_rows(spec: PipelineSpec, schema: pl.Schema) -> pl.Expr | None:
    """Daily partitions: the rows whose partition column holds no date or time (null, or text such as
    'yesterday' that does not parse); None for static partitions."""
    if spec.partitions.static is not None:
        return None
    value = pl.col(spec.partitions.column)
    if schema[spec.partitions.column] == pl.String:
        return value.is_null() | value.str.to_datetime(strict=False).is_null()
    return value.is_null()


def _in_partition(spec: PipelineSpec, partition_key: str, schema: pl.Schema) -> pl.Expr:
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
    """The partition's accepted rows and rejects in memory (for small partitions and tools; the input
    asset writes the batches of `split_partition` to Parquet instead)."""
    batches = list(split_partition(spec, partition_key, base_dir))
    return PartitionRows(
        accepted=pl.concat([batch.accepted for batch in batches]),
        rejects=pl.concat([batch.rejects for batch in batches]),
    )


def split_partition(spec: PipelineSpec, partition_key: str, base_dir: Path) -> Iterator[PartitionRows]:
    """The partition's rows, split into accepted rows and rejects a batch at a time (at least one
    batch, maybe empty), in source order with row numbers counted across batches.

    A first pass over the partition's ids finds the duplicated ones; the second reads the partition in
    batches: from the source with polars' streaming engine, or, for CSV, from the partition's rows staged
    to Parquet a block at a time (`stage_csv_partition`) in a temporary folder under `base_dir`, removed
    when the iteration ends."""
    lazy = load_source(spec, base_dir)
    schema = lazy.collect_schema()
    needed = [spec.id_column, spec.partitions.column, *spec.prompt.columns]
    missing = [column for column in dict.fromkeys(needed) if column not in schema]
    if missing:
        raise SourceError(
            f"pipeline {spec.name!r}: the source has no column(s) {', '.join(missing)} "
            f"(used by id_column / partitions / prompt); it has: {', '.join(schema.names())}"
        )
    if spec.source.file_format != "csv" or spec.source.sql is not None:
        rows = lazy.filter(partition_filter(spec, partition_key, schema))
        if source_bytes(spec, base_dir) > COMPACT_ABOVE_BYTES:
            rows = rows.map_batches(
                compact, streamable=True, projection_pushdown=True, predicate_pushdown=True
            )
        try:
            checks = row_checks(spec, schema, duplicated_ids(spec, rows, base_dir))
            if spec.source.sql is None and spec.source.file_format not in ("csv", "jsonl"):
                keep = partition_filter(spec, partition_key, schema)
                batches: Iterable[pl.DataFrame] = parquet_batches(source_files(spec, base_dir), schema, keep)
            else:
                batches = rows.collect_batches(chunk_size=BATCH_ROWS, engine="streaming")
            yield from split_batches(spec, partition_key, batches, checks, pl.DataFrame(schema=schema))
        except (pl.exceptions.PolarsError, OSError) as error:
            raise source_failure(spec, error) from None
        return
    with scratch_folder(base_dir, ".partition-staging-") as folder:
        staged = [
            stage_csv_partition(spec, partition_key, file, folder / f"{index}.parquet")
            for index, file in enumerate(source_files(spec, base_dir))
        ]
        staged_rows = pl.concat([pl.scan_parquet(file) for file in staged], how="diagonal_relaxed")
        staged_schema = staged_rows.collect_schema()
        checks = row_checks(spec, staged_schema, duplicated_ids(spec, staged_rows, base_dir))
        yield from split_batches(
            spec,
            partition_key,
            staged_batches(staged, staged_schema),
            checks,
            pl.DataFrame(schema=staged_schema),
        )


def duplicated_ids(spec: PipelineSpec, rows: pl.LazyFrame, base_dir: Path) -> pl.Series:
    """The ids (as text) that appear more than once in `rows`. The id column is streamed to a Parquet
    file in a scratch folder under `base_dir` and grouped there by DuckDB, which spills to disk past its
    memory limit: memory does not grow with the number of distinct ids (a polars group_by held them all)."""
    with scratch_folder(base_dir, ".partition-ids-") as folder:
        ids = folder / "ids.parquet"
        rows.select(pl.col(spec.id_column).cast(pl.String).alias("id")).drop_nulls().sink_parquet(ids)
        with spilling_duckdb(folder) as connection:
            duplicated = connection.sql(
                f"SELECT id FROM read_parquet({sql_path(ids)}) GROUP BY id HAVING count(*) > 1"
            ).pl()
    return duplicated["id"].cast(pl.String).alias(spec.id_column)


def staged_batches(files: list[Path], schema: pl.Schema) -> Iterator[pl.DataFrame]:
    """The staged files' rows a row group at a time, in the partition's combined schema."""
    for file in files:
        parquet = pq.ParquetFile(file)
        for index in range(parquet.num_row_groups):
            yield in_schema(pl.DataFrame(pl.from_arrow(parquet.read_row_group(index))), schema)


def parquet_batches(files: list[Path], schema: pl.Schema, keep: pl.Expr) -> Iterator[pl.DataFrame]:
    """A Parquet source's rows of one partition, read with pyarrow's batch reader and filtered a batch
    at a time: one batch in memory whatever the file's size (polars' collect_batches runs the whole query
    ahead of its consumer, holding what it has not handed out yet)."""
    for file in files:
        first_line = 1
        for record_batch in pq.ParquetFile(file).iter_batches(batch_size=BATCH_ROWS):
            batch = pl.DataFrame(pl.from_arrow(record_batch)).with_columns(
                pl.int_range(first_line, first_line + record_batch.num_rows).alias(SOURCE_LINE),
                pl.lit(file.name).alias(SOURCE_FILE),
            )
            first_line += record_batch.num_rows
            rows = in_schema(batch, schema).filter(keep)
            if rows.height:
                yield rows


def in_schema(batch: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """The batch with exactly `schema`'s columns and types (a column a file lacks is null)."""
    return batch.select(
        pl.col(name).cast(dtype) if name in batch.columns else pl.lit(None, dtype).alias(name)
        for name, dtype in schema.items()
    )


def split_batches(
    spec: PipelineSpec,
    partition_key: str,
    batches: Iterable[pl.DataFrame],
    checks: list[Check],
    empty: pl.DataFrame,
) -> Iterator[PartitionRows]:
    """Each batch split, row numbers counted across batches; `empty` stands in when there is none."""
    offset = 0
    for batch in batches:
        yield split_rows(spec, partition_key, batch, checks, row_offset=offset)
        offset += batch.height
    if offset == 0:
        yield split_rows(spec, partition_key, empty, checks)


def source_failure(spec: PipelineSpec, error: Exception) -> SourceError:
    where = spec.source.path or "the query in 'source.sql'"
    return SourceError(f"pipeline {spec.name!r}: reading {where} failed: {error}")


def compact(frame: pl.DataFrame) -> pl.DataFrame:
    """A filtered batch's own copy of its strings when it holds only a small share of the buffers it
    points into: otherwise every batch a sink has not flushed yet pins its whole block of the file."""
    table = frame.to_arrow()
    if table.get_total_buffer_size() <= 2 * table.nbytes + (1 << 20):
        return frame
    return pl.DataFrame(pl.from_arrow(frame.to_arrow(compat_level=pl.CompatLevel.oldest())))


def stage_csv_partition(spec: PipelineSpec, partition_key: str, file: Path, staged: Path) -> Path:
    """Copy the partition's rows of one CSV file to a Parquet file, reading the CSV a block at a time
    (bytes that are not UTF-8 read as NOT_UTF8, see `utf8_marked`)."""
    try:
        schema = pl.scan_csv(file, encoding="utf8-lossy").collect_schema()
        keep = partition_filter(spec, partition_key, schema)
        writer: pq.ParquetWriter | None = None
        line = 2  # line 1 is the header
        for block in csv_blocks(file):
            rows = pl.read_csv(utf8_marked(block), has_header=False, schema=schema)
            numbered = rows.with_columns(
                pl.int_range(line, line + rows.height, dtype=pl.Int64).alias(SOURCE_LINE),
                pl.lit(file.name).alias(SOURCE_FILE),
            )
            line += rows.height
            table = numbered.filter(keep).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(staged, table.schema, compression="zstd", use_dictionary=False)
            writer.write_table(table)
        if writer is None:
            empty = pl.DataFrame(schema=schema).with_columns(
                pl.lit(None, pl.Int64).alias(SOURCE_LINE), pl.lit(None, pl.String).alias(SOURCE_FILE)
            )
            pq.write_table(empty.to_arrow(), staged)
        else:
            writer.close()
    except (pl.exceptions.PolarsError, OSError, pa.ArrowException) as error:
        raise source_failure(spec, error) from None
    return staged


def csv_blocks(file: Path, block_bytes: int = CSV_BLOCK_BYTES) -> Iterator[bytes]:
    """The file's records after its header line, in blocks of about `block_bytes`, each ending at a
    record boundary (a newline outside double quotes)."""
    with file.open("rb") as handle:
        handle.readline()
        pending = b""
        while True:
            block = handle.read(block_bytes)
            data = pending + block
            cut = len(data) if not block else record_end(data)
            if cut:
                yield data[:cut]
            pending = data[cut:]
            if not block:
                return


def utf8_marked(block: bytes) -> bytes:
    """The block as valid UTF-8: each run of bytes that are not UTF-8 becomes one NOT_UTF8 mark."""
    try:
        block.decode("utf-8")
        return block
    except UnicodeDecodeError:  # (surrogateescape turns exactly the bad bytes into lone surrogates)
        text = block.decode("utf-8", errors="surrogateescape")
        return NOT_UTF8_BYTES.sub(NOT_UTF8, text).encode("utf-8")


def record_end(data: bytes) -> int:
    """Just past the last newline in `data` that ends a record (an even number of quotes before it),
    or 0 when no record ends in it. `data` starts at a record boundary."""
    quotes = data.count(b'"')
    end = len(data)
    while (newline := data.rfind(b"\n", 0, end)) >= 0:
        quotes -= data.count(b'"', newline, end)
        if quotes % 2 == 0:
            return newline + 1
        end = newline
    return 0


# A check on a row: the condition that rejects it, and the reason given (computed for rejected rows only).
Check = tuple[pl.Expr, pl.Expr]


def row_checks(spec: PipelineSpec, schema: pl.Schema, duplicates: pl.Series) -> list[Check]:
    """The checks on each row of a partition whose duplicated ids are `duplicates`."""
    id_text = pl.col(spec.id_column).cast(pl.String)
    checks: list[Check] = [
        (pl.col(spec.id_column).is_null(), pl.lit(f"id column '{spec.id_column}' is null")),
        (id_text.is_in(duplicates.implode()), pl.lit(f"id is not unique in column '{spec.id_column}'")),
        *(
            (pl.col(column).is_null(), pl.lit(f"prompt column '{column}' is null"))
            for column in spec.prompt.columns
        ),
    ]
    checks.extend(_undated_checks(spec, schema))
    checks.extend(_not_utf8_checks(spec, schema))
    checks.extend(_context_window_checks(spec))
    if spec.provider in PROVIDER_ID_RULES:
        pattern, wording = PROVIDER_ID_RULES[spec.provider]
        checks.append(
            (
                id_text.is_not_null() & ~id_text.str.contains(pattern),
                pl.lit(f"id is not usable by {spec.provider} ({wording})"),
            )
        )
    return checks


def split_rows(
    spec: PipelineSpec, partition_key: str, rows: pl.DataFrame, checks: list[Check], *, row_offset: int = 0
) -> PartitionRows:
    """Accepted rows and rejects of one batch; a reject's reason is formatted for rejected rows only."""
    id_text = pl.col(spec.id_column).cast(pl.String)
    failed = [f"_check_{index}" for index in range(len(checks))]
    flags = rows.select(
        condition.fill_null(False).alias(name) for name, (condition, _) in zip(failed, checks, strict=True)
    )
    rejected = flags.select(pl.any_horizontal(failed).alias(REJECTED))
    if not rejected[REJECTED].any():  # the usual batch: nothing to filter out or explain
        accepted = rows.drop(SOURCE_FILE, SOURCE_LINE, strict=False).with_columns(
            id_text.alias(spec.id_column)
        )
        return PartitionRows(accepted=accepted, rejects=pl.DataFrame(schema=REJECTS_SCHEMA))
    checked = rows.with_row_index(ROW_NUMBER, offset=row_offset).hstack(flags).hstack(rejected)
    reason = pl.concat_str(
        [pl.when(pl.col(name)).then(message) for name, (_, message) in zip(failed, checks, strict=True)],
        separator="; ",
        ignore_nulls=True,
    )
    rejects = (
        checked.filter(pl.col(REJECTED))
        .select(
            pl.lit(spec.name).alias("pipeline"),
            pl.lit(partition_key).alias("partition_key"),
            pl.col(ROW_NUMBER).cast(pl.Int64),
            id_text.alias("id"),
            reason.alias("reason"),
        )
        .cast(REJECTS_SCHEMA)  # type: ignore[arg-type]
    )
    accepted = (
        checked.filter(~pl.col(REJECTED))
        .drop(ROW_NUMBER, REJECTED, *failed, SOURCE_FILE, SOURCE_LINE, strict=False)
        .with_columns(id_text.alias(spec.id_column))
    )
    return PartitionRows(accepted=accepted, rejects=rejects)


def _undated_checks(spec: PipelineSpec, schema: pl.Schema) -> list[Check]:
    undated = undated_rows(spec, schema)
    if undated is None:
        return []
    column = spec.partitions.column
    value = pl.col(column)
    no_partition = "the row belongs to no daily partition"
    reason = (
        pl.when(value.is_null())
        .then(pl.lit(f"partition column '{column}' is null: {no_partition}"))
        .otherwise(
            pl.format(
                "partition column '{}' holds '{}', which is not a date or time: {}",
                pl.lit(column),
                value.cast(pl.String),
                pl.lit(no_partition),
            )
        )
    )
    return [(undated, reason)]


def _not_utf8_checks(spec: PipelineSpec, schema: pl.Schema) -> list[Check]:
    """CSV only: Parquet and JSON readers refuse bytes that are not UTF-8, so nothing there is marked."""
    if SOURCE_FILE not in schema or spec.source.sql is not None or spec.source.file_format != "csv":
        return []
    where = pl.format("(file {}, line {})", pl.col(SOURCE_FILE), pl.col(SOURCE_LINE))
    return [
        (
            pl.col(column).str.contains(NOT_UTF8, literal=True),
            pl.format("column '{}' holds bytes that are not valid UTF-8 {}", pl.lit(column), where),
        )
        for column in dict.fromkeys([spec.id_column, *spec.prompt.columns])
        if schema[column] == pl.String
    ]


def _context_window_checks(spec: PipelineSpec) -> list[Check]:
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
        (
            prompt_tokens + answer_tokens > window,
            pl.format(
                "prompt of about {} tokens plus {} answer tokens exceeds the {} context window ({} tokens)",
                prompt_tokens,
                pl.lit(answer_tokens),
                pl.lit(spec.model),
                pl.lit(window),
            ),
        )
    ]
