"""`batch-pipelines report --out report.html`: cost and throughput as HTML, with PNG charts beside it."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batch_pipelines.console.output import print_error, print_json
from batch_pipelines.storage.locations import DataLocations, add_location_options


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write an HTML cost and throughput report with PNG charts",
        description=(
            "Items per hour and cost per partition over time, failures by reason and the batch-versus-"
            "realtime savings, from the store and the dead-letter tables of the working folder, or of the "
            "shared deployment (--store-url, --storage-url or their environment variables)."
        ),
    )
    parser.add_argument("--out", type=Path, default=Path("report.html"), help="the HTML file to write")
    add_location_options(parser)
    parser.add_argument("--json", action="store_true", help="print the files written as JSON")
    parser.set_defaults(handler=report_command)


def write_report(locations: DataLocations, out: Path) -> dict[str, Path]:
    """Write the page and its charts; returns every file written (charts by name, and `html`)."""
    from batch_pipelines.console.report_charts import draw_charts
    from batch_pipelines.console.report_data import gather_report_data
    from batch_pipelines.console.report_html import render_report

    out = out.resolve()
    data = gather_report_data(locations, now=datetime.now(UTC))
    for line in data.unreadable:
        print_error(f"warning: {line}")
    charts = draw_charts(data, out.parent, out.stem)
    out.write_text(render_report(data, charts, out), encoding="utf-8")
    return {**charts, "html": out}


def report_command(args: argparse.Namespace) -> int:
    try:
        written = write_report(DataLocations.from_args(args), args.out)
    except ValueError as error:
        print_error(f"error: {error}")
        return 1
    if args.json:
        print_json({name: str(path) for name, path in written.items()})
        return 0
    for path in written.values():
        print(path)
    return 0
