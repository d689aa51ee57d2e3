"""The report page: headline figures, the charts (PNG files beside the page) and the tables behind them."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from batch_pipelines.console.output import format_cell
from batch_pipelines.console.report_data import ReportData
from batch_pipelines.console.spend import SpendLine

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
h1 { margin-bottom: 0.2rem; } .muted { color: #666; }
.figures { display: flex; gap: 1rem; flex-wrap: wrap; margin: 1rem 0; }
.figure { border: 1px solid #ddd; border-radius: 6px; padding: 0.6rem 1rem; min-width: 9rem; }
.figure b { display: block; font-size: 1.4rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #eee; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5rem 0; }
"""

CHART_TITLES = {
    "throughput": "Items per hour by partition over time",
    "cost_over_time": "Spend over time, batch vs realtime price",
    "cost_per_partition": "Cost per partition: paid, and forecast before submission",
    "failures": "Failures by reason",
    "savings": "Batch and realtime spend, and the batch savings",
}


def render_report(data: ReportData, charts: dict[str, Path], page: Path) -> str:
    total = data.total
    figures = [
        ("jobs", total.jobs if total else 0),
        ("items answered", total.items if total else 0),
        ("items failed", total.failed if total else 0),
        ("paid (batch and realtime)", f"${total.cost_usd:.4f}" if total else "$0"),
        ("of which realtime calls", f"${data.realtime_total.cost_usd:.4f}" if data.realtime_total else "$0"),
        ("at realtime price", f"${total.realtime_usd:.4f}" if total else "$0"),
        ("saved", f"${total.saved_usd:.4f}" if total else "$0"),
        ("forecast: expected", f"${total.expected_usd:.4f}" if total else "$0"),
        ("forecast: worst case", f"${total.worst_case_usd:.4f}" if total else "$0"),
        ("discount realised", f"{total.discount_pct:.1f}%" if total and total.discount_pct else "-"),
    ]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>batch_pipelines: cost and throughput</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Cost and throughput</h1>",
        f"<p class='muted'>{escape(data.source)}, generated "
        f"{escape(data.generated_at.strftime('%Y-%m-%d %H:%M:%S %Z'))}.</p>",
        "<div class='figures'>",
        *(
            f"<div class='figure'><span class='muted'>{escape(n)}</span><b>{escape(str(v))}</b></div>"
            for n, v in figures
        ),
        "</div>",
        *(f"<p class='warning'>Unreadable: {escape(line)}</p>" for line in data.unreadable),
    ]
    for name, path in charts.items():
        relative = Path(path).relative_to(page.parent) if path.is_relative_to(page.parent) else path
        title = CHART_TITLES.get(name, name)
        parts.append(
            f"<h2>{escape(title)}</h2><img src='{escape(relative.as_posix())}' alt='{escape(title)}'>"
        )
        if name == "throughput":
            parts.append(_partition_table(data.by_partition, data))
        elif name == "failures":
            parts.append(_table(["pipeline", "reason", "items"], data.failures))
        elif name == "cost_per_partition":
            parts.append(_forecast_table(data.by_job))
        elif name == "savings":
            parts.append(_spend_table(data.by_pipeline_path, ["pipeline", "path"]))
    parts.append("</body></html>")
    return "\n".join(parts)


def _partition_table(lines: Sequence[SpendLine], data: ReportData) -> str:
    rates: dict[tuple[str, str, str], list[float]] = {}
    for point in data.points:
        if point.items_per_hour is not None:
            rates.setdefault((point.pipeline, point.partition_key, point.model), []).append(
                point.items_per_hour
            )
    rows = []
    for line in lines:
        observed = rates.get((line.group[0], line.group[1], line.group[2]), [])
        rows.append(
            (
                *line.group,
                line.jobs,
                line.items,
                line.failed,
                max(observed) if observed else None,
                line.cost_usd,
                line.saved_usd,
            )
        )
    columns = [
        "pipeline",
        "partition",
        "model",
        "jobs",
        "items",
        "failed",
        "items/hour",
        "cost USD",
        "saved USD",
    ]
    return _table(columns, rows)


def _forecast_table(lines: Sequence[SpendLine]) -> str:
    """Each job's forecast beside its bill (errors once it has ended), with the forecast's basis."""
    columns = ["job", "paid USD", "expected USD", "worst case USD", "expected error %", "worst case error %"]
    rows = [
        (
            line.group[0],
            line.cost_usd,
            line.expected_usd,
            line.worst_case_usd,
            line.ended.error_pct(line.ended.expected_usd),
            line.ended.error_pct(line.ended.worst_case_usd),
            line.forecast_basis,
        )
        for line in lines
    ]
    return _table([*columns, "basis"], rows)


def _spend_table(lines: Sequence[SpendLine], levels: list[str]) -> str:
    columns = [*levels, "jobs", "calls", "items", "cost USD", "realtime USD", "saved USD", "discount %"]
    rows = [
        (
            *line.group,
            line.jobs,
            line.calls,
            line.items,
            line.cost_usd,
            line.realtime_usd,
            line.saved_usd,
            line.discount_pct,
        )
        for line in lines
    ]
    return _table(columns, rows)


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(name)}</th>" for name in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(format_cell(value))}</td>" for value in row) + "</tr>" for row in rows
    )
    if not rows:
        body = f"<tr><td colspan='{len(columns)}' class='muted'>nothing yet</td></tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
