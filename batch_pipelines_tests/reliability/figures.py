"""The suite's figures: per scenario, what went in, what came out, what failed and why, and the checks
that must read zero (lost items, duplicate result rows, provider calls wasted on answered items).

Tests record one `Figures` each; the suite's conftest prints them as one table at the end of the run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

HEADERS = (
    "scenario",
    "path",
    "items in",
    "with result",
    "dead-lettered",
    "lost",
    "dup rows",
    "wasted calls",
    "provider calls",
    "retry USD",
    "total USD",
)


@dataclass
class Figures:
    scenario: str
    path: str
    items_in: int
    with_result: int
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    duplicate_rows: int = 0
    wasted_calls: int = 0
    provider_calls: int = 0
    retry_usd: float = 0.0
    total_usd: float = 0.0

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letter_reasons.values())

    def row(self) -> tuple[str, ...]:
        return (
            self.scenario,
            self.path,
            f"{self.items_in:,}",
            f"{self.with_result:,}",
            f"{self.dead_lettered:,}",
            str(self.lost),
            str(self.duplicate_rows),
            str(self.wasted_calls),
            f"{self.provider_calls:,}",
            f"{self.retry_usd:.4f}",
            f"{self.total_usd:.4f}",
        )

    def reasons(self) -> str:
        return ", ".join(f"{reason} {count}" for reason, count in sorted(self.dead_letter_reasons.items()))


RECORDED: list[Figures] = []


def record(figures: Figures) -> Figures:
    RECORDED.append(figures)
    return figures


def format_table(rows: list[Figures]) -> str:
    """A Markdown table (it reads in a terminal and pastes into the README), then dead-letter reasons."""
    cells = [HEADERS, *(figures.row() for figures in rows)]
    widths = [max(len(row[index]) for row in cells) for index in range(len(HEADERS))]

    def line(row: tuple[str, ...]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"

    out = [line(HEADERS), "|" + "|".join("-" * (width + 2) for width in widths) + "|"]
    out.extend(line(figures.row()) for figures in rows)
    reasons = [
        f"- {figures.scenario}: {figures.reasons()}" for figures in rows if figures.dead_letter_reasons
    ]
    if reasons:
        out.extend(["", "Dead-letter reasons:", *reasons])
    return "\n".join(out)
