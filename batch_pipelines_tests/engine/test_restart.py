"""A job outlives the process that submitted it: a new process with the same store carries on."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from batch_pipelines import BatchManager, BatchStatus, BatchStore, make_provider
from batch_pipelines.emulator.process import EmulatorProcess
from batch_pipelines.engine import ProviderError
from batch_pipelines.engine.records import JobRecord
from batch_pipelines_tests.engine.conftest import chat, stats, wait_for

pytestmark = pytest.mark.anyio

SUBMITTER = """
import sys, anyio
from pathlib import Path
from batch_pipelines import BatchManager, BatchRequest, BatchStore, make_provider

async def main(name, base_url, db, job_id):
    model = "gpt-4o-mini" if name == "openai" else "claude-haiku-4-5"
    provider = make_provider(name, model=model, base_url=base_url, api_key="sk-test")
    store = BatchStore(Path(db))
    await store.initialize()
    requests = [
        BatchRequest(id=f"r{i}", messages=[{"role": "user", "content": f"Summarise {i}"}]) for i in range(8)
    ]
    job = await BatchManager(provider, store).submit(requests, job_id=job_id)
    print(job.status.value, ",".join(job.provider_batch_ids))

anyio.run(main, *sys.argv[1:])
"""


def _submit_in_subprocess(provider: str, base_url: str, db: Path, job_id: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", SUBMITTER, provider, base_url, str(db), job_id],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def _base_url(emulator: EmulatorProcess, provider: str) -> str:
    return emulator.openai_base_url if provider == "openai" else emulator.anthropic_base_url


@pytest.mark.parametrize("provider_name", ["openai", "anthropic"])
async def test_a_new_process_collects_a_job_submitted_by_an_earlier_one(
    emulator: EmulatorProcess, tmp_path: Path, provider_name: str
) -> None:
    db = tmp_path / "batches.db"
    printed = _submit_in_subprocess(provider_name, _base_url(emulator, provider_name), db, "job-restart")
    assert printed.startswith(("pending", "processing"))

    model = "gpt-4o-mini" if provider_name == "openai" else "claude-haiku-4-5"
    provider = make_provider(
        provider_name, model=model, base_url=_base_url(emulator, provider_name), api_key="k"
    )
    store = BatchStore(db)
    await store.initialize()
    manager = BatchManager(provider, store)
    assert (await manager.get_job("job-restart")).provider_batch_ids == printed.split(" ")[1].split(",")
    assert (await wait_for(manager, "job-restart")).status == BatchStatus.COMPLETED
    results = await manager.get_results("job-restart")
    assert [r.id for r in results] == [f"r{i}" for i in range(8)] and all(r.ok for r in results)
    await provider.aclose()


@pytest.mark.parametrize("provider_name", ["openai", "anthropic"])
async def test_crash_between_create_and_record_adopts_the_batch_instead_of_duplicating(
    emulator: EmulatorProcess, admin: httpx.Client, tmp_path: Path, provider_name: str
) -> None:
    db = tmp_path / "batches.db"
    printed = _submit_in_subprocess(provider_name, _base_url(emulator, provider_name), db, "job-crash")
    created_batch = printed.split(" ")[1]
    # The state a crash right after the provider's create call leaves: intent recorded, batch id lost.
    with sqlite3.connect(db) as conn:
        updated = conn.execute(
            "UPDATE bp_provider_batches SET provider_batch_id = NULL, raw_status = 'queued',"
            " phase = 'pending', detail = 'queued'"
            " WHERE job_id = 'job-crash' AND launch_started_at IS NOT NULL"
        ).rowcount
    assert updated == 1

    model = "gpt-4o-mini" if provider_name == "openai" else "claude-haiku-4-5"
    provider = make_provider(
        provider_name, model=model, base_url=_base_url(emulator, provider_name), api_key="k"
    )
    manager = BatchManager(provider, BatchStore(db))
    again = await manager.submit([], job_id="job-crash")  # re-running the same submission
    assert again.provider_batch_ids == [created_batch]
    assert stats(admin)["batches_created"][provider_name] == 1
    await wait_for(manager, "job-crash")
    assert len(await manager.get_results("job-crash")) == 8
    await provider.aclose()


async def test_claims_a_killed_process_left_are_released_and_launched_at_once(
    emulator: EmulatorProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    """A process killed after claiming a launch (before its create call) or while preparing a job: its
    claims would hold for their lease; a caller that knows it is alone (the demo) releases them."""
    store = BatchStore(tmp_path / "batches.db")
    requests = [chat(f"r{i}", f"Summarise {i}") for i in range(3)]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    unreachable = make_provider("openai", model="gpt-4o-mini", base_url=dead, api_key="k", max_attempts=1)
    with pytest.raises(ProviderError):
        await BatchManager(unreachable, store).submit(requests, job_id="job-claimed")
    [intent] = await store.get_batches("job-claimed")
    assert await store.claim_launch(intent, time.time())  # the kill came right after this
    preparing = JobRecord(
        id="job-preparing", provider="openai", model="gpt-4o-mini", kind="chat", created_at=time.time()
    )
    preparing.prepare_lease_until = time.time() + 3600
    assert await store.claim_job(preparing)

    provider = make_provider("openai", model="gpt-4o-mini", base_url=emulator.openai_base_url, api_key="k")
    manager = BatchManager(provider, store)
    assert (await manager.refresh("job-claimed")).provider_batch_ids == []  # held by the dead claim
    await store.release_claims()
    assert len((await manager.refresh("job-claimed")).provider_batch_ids) == 1
    prepared = await manager.submit(requests, job_id="job-preparing")
    assert prepared.progress.total == 3
    assert stats(admin)["batches_created"]["openai"] == 2
    await wait_for(manager, "job-claimed")
    assert [r.id for r in await manager.get_results("job-claimed")] == ["r0", "r1", "r2"]
    await provider.aclose()
    await unreachable.aclose()
