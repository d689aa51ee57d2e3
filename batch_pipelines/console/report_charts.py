"""The report's PNG charts, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from batch_pipelines.console.report_data import ReportData
from batch_pipelines.console.spend import SpendLine
from batch_pipelines.engine.spend import PACKED, REALTIME

REALTIME_PATHS = (REALTIME, PACKED)

CHART_FILES = {
    "throughput": "items_per_hour.png",
    "cost_over_time": "cost_over_time.png",
    "cost_per_partition": "cost_per_partition.png",
    "failures": "failures_by_reason.png",
    "savings": "batch_vs_realtime.png",
}


def draw_charts(data: ReportData, folder: Path, stem: str) -> dict[str, Path]:
    """Write every chart as `<stem>_<name>.png` in `folder`; returns chart name → path."""
    folder.mkdir(parents=True, exist_ok=True)
    drawers = {
        "throughput": _throughput,
        "cost_over_time": _cost_over_time,
        "cost_per_partition": _cost_per_partition,
        "failures": _failures,
        "savings": _savings,
    }
    written: dict[str, Path] = {}
    for name, draw in drawers.items():
        figure = plt.figure(figsize=(9, 4.2), dpi=100)
        try:
            draw(figure, data)
            figure.tight_layout()
            path = folder / f"{stem}_{CHART_FILES[name]}"
            figure.savefig(path, format="png")
            written[name] = path
        finally:
            plt.close(figure)
    return written


def _empty(figure: Figure, title: str, message: str) -> None:
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes, color="grey")
    axes.set_axis_off()


def _throughput(figure: Figure, data: ReportData) -> None:
    title = "Items per hour by partition, at submission time"
    points = [p for p in data.points if p.items_per_hour is not None]
    if not points:
        _empty(figure, title, "no job has finished an item yet")
        return
    axes = figure.add_subplot()
    series: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for point in points:
        assert point.items_per_hour is not None
        when = float(mdates.date2num(point.submitted_at))
        series[point.pipeline].append((when, point.items_per_hour, point.partition_key))
    for pipeline, values in sorted(series.items()):
        axes.plot([v[0] for v in values], [v[1] for v in values], marker="o", linestyle="-", label=pipeline)
        for when, rate, partition in values:
            axes.annotate(partition, (when, rate), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes.set_title(title)
    axes.set_ylabel("items / hour")
    axes.legend(loc="best", fontsize=8)
    _time_axis(figure, axes)


def _cost_over_time(figure: Figure, data: ReportData) -> None:
    title = "Cumulative spend: batch price vs the same tokens at realtime price"
    points = [p for p in data.points if p.cost_usd is not None]
    if not points:
        _empty(figure, title, "no priced usage yet")
        return
    axes = figure.add_subplot()
    times: list[float] = []
    batch: list[float] = []
    realtime: list[float] = []
    spent = equivalent = 0.0
    for point in points:
        spent += point.cost_usd or 0.0
        equivalent += point.realtime_usd or 0.0
        times.append(float(mdates.date2num(point.submitted_at)))
        batch.append(spent)
        realtime.append(equivalent)
    axes.step(times, realtime, where="post", label="realtime price", color="tab:red")
    axes.step(times, batch, where="post", label="batch (paid)", color="tab:green")
    axes.fill_between(times, batch, realtime, step="post", alpha=0.15, color="tab:green", label="saved")
    axes.set_title(title)
    axes.set_ylabel("USD")
    axes.legend(loc="upper left", fontsize=8)
    _time_axis(figure, axes)


def _time_axis(figure: Figure, axes: Axes) -> None:
    locator = mdates.AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    figure.autofmt_xdate()


def _cost_per_partition(figure: Figure, data: ReportData) -> None:
    title = "Cost per partition"
    lines = [line for line in data.by_partition if line.cost_usd or line.worst_case_usd]
    if not lines:
        _empty(figure, title, "no spend yet")
        return
    axes = figure.add_subplot()
    labels = [f"{line.group[0]}\n{line.group[1]}" for line in lines]
    positions = range(len(lines))
    for offset, label, values in (
        (-0.27, "paid", [line.cost_usd for line in lines]),
        (0.0, "expected", [line.expected_usd for line in lines]),
        (0.27, "worst case", [line.worst_case_usd for line in lines]),
    ):
        axes.bar([p + offset for p in positions], values, width=0.27, label=label)
    axes.set_xticks(list(positions), labels, fontsize=7, rotation=45, ha="right")
    axes.set_title(title)
    axes.set_ylabel("USD")
    axes.legend(fontsize=8)


def _failures(figure: Figure, data: ReportData) -> None:
    title = "Dead letters by reason"
    if not data.failures:
        _empty(figure, title, "no dead letters")
        return
    axes = figure.add_subplot()
    labels = [f"{pipeline}: {reason}" for pipeline, reason, _ in data.failures][::-1]
    axes.barh(labels, [count for _, _, count in data.failures][::-1], color="tab:red")
    axes.set_title(title)
    axes.set_xlabel("items")


def _savings(figure: Figure, data: ReportData) -> None:
    title = "Spend per pipeline: batch jobs and realtime calls"
    pipelines = sorted({line.group[0] for line in data.by_pipeline_path if line.realtime_usd})
    if not pipelines:
        _empty(figure, title, "no priced usage yet")
        return
    batch: dict[str, SpendLine] = {}
    realtime_paid: dict[str, float] = defaultdict(float)
    for line in data.by_pipeline_path:
        pipeline, path = line.group
        if path in REALTIME_PATHS:
            realtime_paid[pipeline] += line.cost_usd
        else:
            batch[pipeline] = line
    axes = figure.add_subplot()
    positions = range(len(pipelines))
    at_realtime = [batch[p].realtime_usd if p in batch else 0.0 for p in pipelines]
    paid = [batch[p].cost_usd if p in batch else 0.0 for p in pipelines]
    axes.bar([p - 0.27 for p in positions], at_realtime, width=0.27, label="batch tokens at realtime price")
    axes.bar(list(positions), paid, width=0.27, label="batch (paid)")
    axes.bar(
        [p + 0.27 for p in positions],
        [realtime_paid[p] for p in pipelines],
        width=0.27,
        label="realtime calls (paid)",
    )
    for position, pipeline in zip(positions, pipelines, strict=True):
        batch_line = batch.get(pipeline)
        if batch_line is not None and batch_line.discount_pct is not None:
            axes.annotate(
                f"-{batch_line.discount_pct:.0f}%",
                (position, batch_line.cost_usd),
                ha="center",
                fontsize=8,
                xytext=(0, 3),
                textcoords="offset points",
            )
    axes.set_xticks(list(positions), pipelines, fontsize=8)
    axes.set_title(title)
    axes.set_ylabel("USD")
    axes.legend(fontsize=8)
