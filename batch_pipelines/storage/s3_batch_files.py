"""The provider batches' input and output files on S3, beside the tables: the engine's BatchFileArchive
for a deployment whose tables are on S3, at
`<prefix>/batch_files/<job id>/attempt<n>-chunk<NNNNN>.{input,output}.jsonl`.

Works with any boto3 S3 client (dagster-aws's S3Resource hands one out); `upload_file` replaces an
object whole, so a re-run's copy replaces the earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_pipelines.storage.s3_tables import S3Location

FOLDER = "batch_files"


@dataclass(frozen=True)
class S3BatchFiles:
    client: Any  # a boto3 S3 client
    location: S3Location

    def uri(self, name: str) -> str:
        return self.location.uri(FOLDER, name)

    def keep(self, name: str, path: Path) -> None:
        self.client.upload_file(str(path), self.location.bucket, self.location.key(FOLDER, name))
