"""Keeping a copy of each provider batch's input and output file (e.g. on S3), when asked to.

The engine renders a batch's input into a temporary file and streams its output lines; neither stays on
disk. A ``BatchFileArchive`` given to ``BatchManager(archive=…)`` receives each file once the engine is
done with it: the input after the provider batch is created and recorded, the output after its results
are stored. Names are ``<job id>/attempt<n>-chunk<NNNNN>.input.jsonl`` and ``….output.jsonl``, so a
re-run replaces a copy rather than adding one. The archive is called in a worker thread; if it fails,
the error propagates after the store is up to date, so a re-run picks up where it left off. A provider
whose results are values rather than lines (the local provider) keeps its own output files, and none is
archived for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

import anyio.to_thread

from batch_pipelines.engine.records import BatchRecord


class BatchFileArchive(Protocol):
    def keep(self, name: str, path: Path) -> None:
        """Store the file at ``path`` under ``name`` (replacing an earlier copy of that name)."""


def batch_file_name(batch: BatchRecord, side: Literal["input", "output"]) -> str:
    return f"{batch.job_id}/attempt{batch.attempt}-chunk{batch.chunk:05d}.{side}.jsonl"


async def keep_batch_file(
    archive: BatchFileArchive | None, batch: BatchRecord, side: Literal["input", "output"], path: Path
) -> None:
    if archive is not None:
        await anyio.to_thread.run_sync(archive.keep, batch_file_name(batch, side), path)
