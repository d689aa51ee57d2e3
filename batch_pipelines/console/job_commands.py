"""`batch-pipelines status | submit | results | cancel | retry`: the Python API's job calls from the shell."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from rich.live import Live

from batch_pipelines.console.engine_access import (
    CommandError,
    add_json_option,
    add_provider_options,
    add_workdir_option,
    open_manager,
    open_store,
)
from batch_pipelines.console.failures import debug_requested
from batch_pipelines.console.job_view import forecast_line, job_dict, status_table
from batch_pipelines.console.jsonl_input import RequestFileError, read_request_file
from batch_pipelines.console.output import console, print_error, print_json, print_table
from batch_pipelines.console.submit_checks import budget_usd, file_digest, refuse_other_file
from batch_pipelines.engine import BatchEngineError, BatchJob, BatchResult, BatchStore, ProviderError

RESPONSE_PREVIEW = 80


def register(subparsers: Any) -> None:
    status = subparsers.add_parser("status", help="open batch jobs with progress, ETA, rate and cost")
    status.add_argument("--all", action="store_true", help="also list jobs that have ended")
    status.add_argument("--refresh", action="store_true", help="poll the provider for each open job first")
    status.add_argument("--watch", action="store_true", help="keep updating until no job is open")
    status.add_argument("--interval", type=float, default=5.0, help="seconds between updates with --watch")
    _common(status, provider=True)
    status.set_defaults(handler=_handler(status_command))

    submit = subparsers.add_parser("submit", help="submit a JSONL file of requests as one batch job")
    submit.add_argument("file", type=Path, help="OpenAI batch-input lines or {id, messages|input} lines")
    submit.add_argument("--provider", default="openai", choices=("openai", "anthropic"))
    submit.add_argument("--model", default=None, help="model (default: the one the file's lines name)")
    submit.add_argument(
        "--job-id",
        default=None,
        help="a job id of your own (default: one derived from the file's content, provider and model, "
        "so running the same command again resumes the job instead of creating another)",
    )
    submit.add_argument(
        "--max-cost-usd",
        type=budget_usd,
        default=None,
        help="refuse (before any upload) if the worst case (every answer at max_tokens) exceeds it "
        "(USD, >= 0)",
    )
    submit.add_argument("--pipeline", default=None, help="label the job for `cost` and `report`")
    submit.add_argument("--partition", default=None, help="label the job for `cost` and `report`")
    _common(submit, provider=True)
    submit.set_defaults(handler=_handler(submit_command))

    results = subparsers.add_parser("results", help="the results of a finished job")
    results.add_argument("job", help="job id")
    results.add_argument("--failed-only", action="store_true", help="only the requests that failed")
    _common(results, provider=True)
    results.set_defaults(handler=_handler(results_command))

    for name, helptext, command in (
        ("cancel", "cancel a job's unfinished provider batches", cancel_command),
        ("retry", "resubmit a job's transient failures as a new attempt", retry_command),
    ):
        parser = subparsers.add_parser(name, help=helptext)
        parser.add_argument("job", help="job id")
        _common(parser, provider=True)
        parser.set_defaults(handler=_handler(command))


def _common(parser: argparse.ArgumentParser, *, provider: bool) -> None:
    add_workdir_option(parser)
    add_json_option(parser)
    if provider:
        add_provider_options(parser)


def _handler(command: Callable[[argparse.Namespace], Coroutine[Any, Any, int]]) -> Callable[..., int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(command(args))
        except (CommandError, RequestFileError, BatchEngineError, ValueError) as error:
            if debug_requested():
                raise
            print_error(f"error: {error}")
            return 1

    return run


async def all_jobs(store: BatchStore, *, open_only: bool) -> list[BatchJob]:
    jobs: list[BatchJob] = []
    cursor: str | None = None
    while page := await store.list_jobs(open_only=open_only, after=cursor, limit=500):
        jobs.extend(page)
        cursor = page[-1].id
        if len(page) < 500:
            break
    return jobs


async def _refreshed(args: argparse.Namespace, store: BatchStore, jobs: list[BatchJob]) -> list[BatchJob]:
    fresh = []
    for job in jobs:
        if job.status.is_terminal and job.detail != "cancelling":
            fresh.append(job)
            continue
        async with open_manager(args, store, provider=job.provider, model=job.model) as manager:
            fresh.append(await manager.refresh(job.id))
    return fresh


async def status_command(args: argparse.Namespace) -> int:
    async with open_store(args) as store:

        async def snapshot() -> list[BatchJob]:
            jobs = await all_jobs(store, open_only=not args.all)
            return await _refreshed(args, store, jobs) if args.refresh else jobs

        jobs = await snapshot()
        if args.json:
            print_json([job_dict(job) for job in jobs])
            return 0
        title = "Batch jobs" if args.all else "Open batch jobs"
        if not args.watch:
            console().print(status_table(jobs, title))
            return 0
        with Live(status_table(jobs, title), console=console(), auto_refresh=False) as live:
            try:
                while any(not job.status.is_terminal or job.detail == "cancelling" for job in jobs):
                    await asyncio.sleep(args.interval)
                    jobs = await snapshot()
                    live.update(status_table(jobs, title), refresh=True)
            except KeyboardInterrupt:
                pass
    return 0


async def submit_command(args: argparse.Namespace) -> int:
    request_file = read_request_file(args.file)
    model = args.model or request_file.model
    if model is None:
        raise CommandError(f"{args.file}: name the model with --model (the lines do not name exactly one)")
    metadata = {"source_file": args.file.name, "source_sha256": file_digest(args.file)}
    if args.pipeline:
        metadata["pipeline"] = args.pipeline
    if args.partition:
        metadata["partition_key"] = args.partition
    job_id = args.job_id or content_job_id(args.file, args.provider, model)
    async with (
        open_store(args, must_exist=False) as store,
        open_manager(args, store, provider=args.provider, model=model) as manager,
    ):
        await refuse_other_file(store, job_id, args.file, metadata["source_sha256"])
        resumed = await store.get_job_record(job_id) is not None
        try:
            job = await manager.submit(
                request_file.requests, job_id=job_id, metadata=metadata, max_cost_usd=args.max_cost_usd
            )
        except ProviderError as error:
            if await store.get_job_record(job_id) is None:
                raise
            raise CommandError(
                f"{error}\njob {job_id} is recorded but not every batch of it reached the provider; run "
                f"the same command again (or submit with --job-id {job_id}) to resume it: nothing is sent "
                "twice"
            ) from None
    if resumed:
        print_error(f"job {job_id} was submitted before from this file: resumed it, nothing new was created")
    _print_jobs([job], "Submitted", args.json)
    if not args.json:
        console().print(f"Cost forecast: {forecast_line(job)}", markup=False, highlight=False, soft_wrap=True)
    return 0


def content_job_id(path: Path, provider: str, model: str) -> str:
    """The same file for the same provider and model names the same job: submitting it again resumes it."""
    digest = hashlib.sha256(f"{provider}\n{model}\n".encode())
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"job-{digest.hexdigest()[:32]}"


async def results_command(args: argparse.Namespace) -> int:
    async with open_store(args) as store:
        job = await store.get_job(args.job)
        async with open_manager(args, store, provider=job.provider, model=job.model) as manager:
            results = [result async for result in manager.iter_results(args.job)]
    if args.failed_only:
        results = [result for result in results if not result.ok]
    if args.json:
        print_json([_result_dict(result) for result in results])
        return 0
    print_table(
        f"Results of {args.job} ({len(results)})",
        ["id", "ok", "response or error", "error type", "in", "out", "cost", "attempt"],
        [
            (
                r.id,
                "yes" if r.ok else "no",
                _preview(r.response if r.ok else r.error),
                r.error_type,
                r.input_tokens,
                r.output_tokens,
                r.cost_usd,
                r.attempt,
            )
            for r in results
        ],
    )
    return 0


async def cancel_command(args: argparse.Namespace) -> int:
    return await _job_action(args, "cancel", "Cancelled")


async def retry_command(args: argparse.Namespace) -> int:
    return await _job_action(args, "retry_failed", "Retried")


async def _job_action(args: argparse.Namespace, method: str, title: str) -> int:
    async with open_store(args) as store:
        job = await store.get_job(args.job)
        async with open_manager(args, store, provider=job.provider, model=job.model) as manager:
            job = await getattr(manager, method)(args.job)
    _print_jobs([job], title, args.json)
    return 0


def _print_jobs(jobs: list[BatchJob], title: str, as_json: bool) -> None:
    if as_json:
        print_json(job_dict(jobs[0]) if len(jobs) == 1 else [job_dict(job) for job in jobs])
    else:
        console().print(status_table(jobs, f"{title} ({time.strftime('%H:%M:%S')})"))


def _result_dict(result: BatchResult) -> dict[str, Any]:
    return {
        "id": result.id,
        "ok": result.ok,
        "response": result.response,
        "parsed": result.parsed,
        "error": result.error,
        "error_type": result.error_type,
        "retryable": result.retryable,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "cost_usd": result.cost_usd,
        "attempt": result.attempt,
        "provider_batch_id": result.provider_batch_id,
        "embedding_size": len(result.embedding) if result.embedding is not None else None,
        "cached_input_tokens": result.cached_input_tokens,
        "cache_write_input_tokens": result.cache_write_input_tokens,
    }


def _preview(text: str | None) -> str:
    if text is None:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= RESPONSE_PREVIEW else flat[: RESPONSE_PREVIEW - 1] + "…"
