"""The worker's durable output: embeddings as float32 fixed-size lists in Parquet parts.

Each part (``output-000000.parquet``, ...) holds ``custom_id``, ``embedding`` (fixed_size_list<float32>
of the model's dimension) and ``input_tokens`` for a run of finished items. A part is written to a
temporary name and renamed, so a killed worker leaves whole parts only; what they hold is not embedded
again. Nothing here converts a vector to Python floats or text.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batch_pipelines.workdir import PRIVATE_FILE

PART_GLOB = "output-*.parquet"
ID_COLUMN = "custom_id"
EMBEDDING_COLUMN = "embedding"
TOKENS_COLUMN = "input_tokens"


def part_schema(dimensions: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field(ID_COLUMN, pa.string(), nullable=False),
            pa.field(EMBEDDING_COLUMN, pa.list_(pa.float32(), dimensions), nullable=False),
            pa.field(TOKENS_COLUMN, pa.int64(), nullable=False),
        ]
    )


def part_paths(folder: Path) -> list[Path]:
    return sorted(folder.glob(PART_GLOB))


def read_parts(folder: Path) -> Iterator[pa.Table]:
    """Every part of ``folder``, in the order written."""
    for path in part_paths(folder):
        yield pq.read_table(path)


def written_so_far(folder: Path) -> tuple[set[str], int]:
    """The ids the parts hold and their input tokens (leftover temporary files of a killed worker are
    removed)."""
    for leftover in folder.glob(".output-*.tmp"):
        leftover.unlink(missing_ok=True)
    ids: set[str] = set()
    tokens = 0
    for path in part_paths(folder):
        table = pq.read_table(path, columns=[ID_COLUMN, TOKENS_COLUMN])
        ids.update(table.column(ID_COLUMN).to_pylist())
        tokens += int(pc.sum(table.column(TOKENS_COLUMN)).as_py() or 0)
    return ids, tokens


def embedding_matrix(table: pa.Table) -> npt.NDArray[np.float32]:
    """A part's ``embedding`` column as one (rows, dimensions) float32 array, without copying per row."""
    column = table.column(EMBEDDING_COLUMN).combine_chunks()
    dimensions = column.type.list_size
    values = column.values.to_numpy(zero_copy_only=False)
    return values.reshape(len(column), dimensions)


@dataclass(frozen=True, slots=True)
class SealedPart:
    """Items set aside to be written as one part (by any thread)."""

    number: int
    ids: list[pa.Array]
    vectors: list[npt.NDArray[np.float32]]
    tokens: list[npt.NDArray[np.int64]]


class PartWriter:
    """Finished items gathered pass by pass (``add``), set aside as a part (``seal``, in order) and
    written (``write``, on any thread: pyarrow releases the GIL while it writes)."""

    def __init__(self, folder: Path, dimensions: int) -> None:
        self.folder = folder
        self.schema = part_schema(dimensions)
        self._number = len(part_paths(folder))
        self._ids: list[pa.Array] = []
        self._vectors: list[npt.NDArray[np.float32]] = []
        self._tokens: list[npt.NDArray[np.int64]] = []
        self.pending = 0

    def add(self, ids: pa.Array, vectors: npt.NDArray[np.float32], tokens: npt.NDArray[np.int64]) -> None:
        self._ids.append(ids)
        self._vectors.append(np.ascontiguousarray(vectors, dtype=np.float32))
        self._tokens.append(tokens)
        self.pending += len(ids)

    def seal(self) -> SealedPart | None:
        """What was added since the last seal, as the next part (None when nothing was)."""
        if not self.pending:
            return None
        sealed = SealedPart(self._number, self._ids, self._vectors, self._tokens)
        self._number += 1
        self._ids, self._vectors, self._tokens, self.pending = [], [], [], 0
        return sealed

    def write(self, sealed: SealedPart | None) -> tuple[int, int]:
        """Write a sealed part whole (a temporary file renamed into place); returns its items and their
        input tokens."""
        if sealed is None:
            return 0, 0
        vectors = np.concatenate(sealed.vectors)
        tokens = np.concatenate(sealed.tokens)
        embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
        table = pa.Table.from_arrays(
            [pa.concat_arrays(sealed.ids), embedding, pa.array(tokens)], schema=self.schema
        )
        final = self.folder / f"output-{sealed.number:06d}.parquet"
        temporary = self.folder / f".output-{sealed.number:06d}.tmp"
        # Floats do not compress, and dictionaries, statistics and compression of a list column cost
        # more CPU per item than the rest of the write (measured: 7.6 -> 4.1 us an item).
        pq.write_table(
            table,
            temporary,
            compression="none",
            use_dictionary=False,
            write_statistics=False,
            column_encoding={EMBEDDING_COLUMN: "PLAIN", TOKENS_COLUMN: "PLAIN"},
        )
        os.chmod(temporary, PRIVATE_FILE)  # vectors of the inputs: as private as the results
        os.replace(temporary, final)
        return len(table), int(tokens.sum())
