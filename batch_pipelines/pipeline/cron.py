"""A structural check of five-field cron strings, so a typo fails at declaration time."""

from __future__ import annotations

import re

_FIELD_RANGES = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_ITEM = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?$")


def validate_cron(expression: str) -> None:
    """Raise ValueError naming the offending part unless `expression` is a five-field numeric cron."""
    fields = expression.split()
    if len(fields) != len(_FIELD_RANGES):
        raise ValueError(
            f"cron {expression!r} needs 5 fields (minute hour day month weekday), got {len(fields)}"
        )
    for text, (label, low, high) in zip(fields, _FIELD_RANGES, strict=True):
        for item in text.split(","):
            if not _ITEM.match(item):
                raise ValueError(f"cron {expression!r}: {label} field {text!r} is not valid")
            for number in re.findall(r"\d+", item.split("/")[0]):
                if not low <= int(number) <= high:
                    raise ValueError(f"cron {expression!r}: {label} value {number} is outside {low}-{high}")
