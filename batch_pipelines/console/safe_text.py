"""Text from ids, labels and model answers, made safe to print: it reaches the terminal as the characters
it holds, never as rich markup (`[/]`, `[link=…]`) nor as control sequences (ANSI escapes, OSC-8 links,
carriage returns that overwrite a line)."""

from __future__ import annotations

import re

from rich.text import Text

# C0 controls but tab and newline, DEL, and C1 controls (0x80-0x9f, e.g. the 8-bit CSI).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ESCAPE_SEQUENCE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")


def strip_controls(text: str) -> str:
    """`text` without escape sequences and control characters (each shown as nothing)."""
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", text))


def plain(text: str) -> Text:
    """A rich Text of `text` as it reads: not parsed for markup, control characters removed."""
    return Text(strip_controls(text))
