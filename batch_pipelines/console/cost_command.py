"""`batch-pipelines cost [--by pipeline,partition_key,model,path] [--json]`: spend with the discount
realised, batch jobs and realtime calls alike."""

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
from batch_pipelines.console.spend import LEVELS, spend_by, spend_dict
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
        help=f"comma-separated grouping levels out of {', '.join(LEVELS)} (default: all four)",
    )
    add_workdir_option(parser)
    add_json_option(parser)
    parser.set_defaults(handler=cost_command)


def parse_levels(text: str) -> list[str]:
    levels = [level.strip() for level in text.split(",") if level.strip()]
    unknown = [level for level in levels if level not in LEVELS]
    if unknown or not levels:
        raise CommandError(f"--by {text!r}: choose among {', '.join(LEVELS)}")
    return levels


def cost_command(args: argparse.Namespace) -> int:
    try:
        levels = parse_levels(args.by)

        async def load() -> tuple[list[Any], list[SpendTotal]]:
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
    print_table(
        "Spend: what was paid (batch jobs at the batch price, realtime calls at the realtime price) vs the "
        "same tokens at the realtime price",
        columns,
        [[row[name] for name in columns] for row in rows],
    )
    return 0
