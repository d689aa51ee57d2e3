"""`batch-pipelines cost [--by pipeline,partition_key,model,path|job] [--json]`: spend with the discount
realised, batch jobs and realtime calls alike, and each batch job's cost forecast (expected, worst case)
beside what it was billed."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from batch_pipelines.console.engine_access import (
    CommandError,
    add_json_option,
    add_workdir_option,
    open_store,
)
from batch_pipelines.console.job_commands import all_jobs
from batch_pipelines.console.output import print_error, print_json, print_table
from batch_pipelines.console.spend import JOB_LEVEL, LEVELS, spend_by, spend_dict
from batch_pipelines.engine import BatchJob
from batch_pipelines.engine.spend import SpendTotal


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cost",
        help="spend per pipeline, partition, model and path (batch, realtime, packed), with the batch "
        "discount realised",
    )
    parser.add_argument(
        "--by",
        default=",".join(LEVELS),
        help=f"comma-separated grouping levels out of {', '.join(LEVELS)} (default: all four), or "
        f"{JOB_LEVEL!r} for one line per job",
    )
    add_workdir_option(parser)
    add_json_option(parser)
    parser.set_defaults(handler=cost_command)


def parse_levels(text: str) -> list[str]:
    levels = [level.strip() for level in text.split(",") if level.strip()]
    unknown = [level for level in levels if level not in (*LEVELS, JOB_LEVEL)]
    if unknown or not levels:
        raise CommandError(f"--by {text!r}: choose among {', '.join(LEVELS)}, or {JOB_LEVEL}")
    return levels


def cost_command(args: argparse.Namespace) -> int:
    try:
        levels = parse_levels(args.by)

        async def load() -> tuple[list[BatchJob], list[SpendTotal]]:
            async with open_store(args) as store:
                return await all_jobs(store, open_only=False), await store.spend_totals()

        jobs, calls = asyncio.run(load())
    except (CommandError, ValueError) as error:
        print_error(f"error: {error}")
        return 1
    lines = spend_by(jobs, levels, calls)
    rows = [spend_dict(line, levels) for line in lines]
    if args.json:
        print_json(rows)
        return 0
    blank = dict.fromkeys(levels, "")
    for path_total in spend_by(jobs, ["path"], calls) if len(lines) > 1 else []:
        label = f"TOTAL {path_total.group[0]}"
        rows.append({**blank, **spend_dict(path_total, ["path"]), levels[0]: label})
    total = spend_by(jobs, [], calls)
    if total:
        rows.append({**blank, **spend_dict(total[0], []), levels[0]: "TOTAL"})
    columns = [
        *levels,
        "jobs",
        "calls",
        "items",
        "failed",
        "cost_usd",
        "realtime_usd",
        "saved_usd",
        "discount_pct",
    ]
    if JOB_LEVEL in levels:
        columns += FORECAST_COLUMNS[3:]
    columns += ["cached_input_tokens", "cache_saved_usd"]
    print_table(
        "Spend: what was paid (batch jobs at the batch price, realtime calls at the realtime price) vs the "
        "same tokens at the realtime price",
        columns,
        [[row[name] for name in columns] for row in rows],
    )
    if JOB_LEVEL not in levels:
        print_forecast_table(jobs)
    return 0


FORECAST_COLUMNS = [
    "job",
    "partition_key",
    "cost_usd",
    "expected_usd",
    "worst_case_usd",
    "expected_error_pct",
    "worst_case_error_pct",
    "forecast_basis",
]


def print_forecast_table(jobs: list[BatchJob]) -> None:
    """Each job's forecast beside its bill, oldest first: how good the forecasts are, over time."""
    ordered = sorted(jobs, key=lambda job: job.created_at)
    rows = []
    for job in ordered:
        row = spend_dict(spend_by([job], [JOB_LEVEL])[0], [JOB_LEVEL])
        errors = {name: _percent(row[name]) for name in ("expected_error_pct", "worst_case_error_pct")}
        rows.append({**row, **errors, "partition_key": job.metadata.get("partition_key") or ""})
    print_table(
        "Forecast vs billed, per job (error: forecast minus bill in % of the bill, once the job has ended)",
        FORECAST_COLUMNS,
        [[row[name] for name in FORECAST_COLUMNS] for row in rows],
    )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f} %"
