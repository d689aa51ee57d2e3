"""Checks `batch-pipelines submit` makes on its arguments before the engine sees them."""

from __future__ import annotations

import argparse
import hashlib
import math
from pathlib import Path

from batch_pipelines.console.engine_access import CommandError
from batch_pipelines.engine import BatchStore


def budget_usd(text: str) -> float:
    """--max-cost-usd: a finite amount of dollars, zero or more (NaN would pass every comparison)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an amount in USD such as 5 or 0.25, got {text!r}"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite amount of at least 0 USD, got {text!r}")
    return value


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


async def refuse_other_file(store: BatchStore, job_id: str, path: Path, digest: str) -> None:
    """Submitting again under a job id resumes that job; with a different file it would silently ignore
    the new requests, so it is refused."""
    await store.initialize()
    record = await store.get_job_record(job_id)
    if record is None:
        return
    recorded = record.metadata.get("source_sha256")
    if recorded is not None and recorded != digest:
        raise CommandError(
            f"job {job_id!r} was submitted from another file ({record.metadata.get('source_file', '?')}, "
            f"sha256 {recorded[:12]}…), not {path} (sha256 {digest[:12]}…): give a new --job-id for new "
            "requests, or the same file to resume the job"
        )
