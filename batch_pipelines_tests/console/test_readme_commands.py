"""README.md and `batch-pipelines <command> --help` agree: every command is in README's table, with
`--json` and `--workdir` exactly where its help offers them, and every option README shows a command
with is one that command takes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from batch_pipelines.cli import COMMANDS, main

README = Path(__file__).resolve().parents[2] / "README.md"
TABLE_ROW = re.compile(
    r"^\| `(?P<command>[a-z-]+)` \|.*\| (?P<json>yes|no)\b[^|]*\| (?P<workdir>yes|no)\b[^|]*\|$"
)
USAGE = re.compile(r"batch-pipelines (?P<command>[a-z][a-z-]*)(?P<rest>[^`\n|]*)")


def help_text(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def readme_table() -> dict[str, tuple[bool, bool]]:
    rows = {}
    for line in README.read_text(encoding="utf-8").splitlines():
        if match := TABLE_ROW.match(line):
            rows[match["command"]] = (match["json"] == "yes", match["workdir"] == "yes")
    return rows


def readme_usages() -> list[tuple[str, list[str]]]:
    """Each `batch-pipelines COMMAND …` README shows, with the options it passes (comments left out)."""
    usages = []
    for match in USAGE.finditer(README.read_text(encoding="utf-8")):
        rest = match["rest"].split("#", 1)[0]
        usages.append((match["command"], re.findall(r"(?<![\w-])--[a-z][a-z-]*", rest)))
    return usages


def test_readme_lists_every_command_with_its_json_and_workdir_options(
    capsys: pytest.CaptureFixture[str],
) -> None:
    table = readme_table()
    assert sorted(table) == sorted(COMMANDS)
    for command, (json_said, workdir_said) in table.items():
        text = help_text(command, capsys)
        assert ("--json" in text) == json_said, f"README and `{command} --help` disagree on --json"
        assert ("--workdir" in text) == workdir_said, f"README and `{command} --help` disagree on --workdir"


def test_every_option_readme_shows_is_one_the_command_takes(capsys: pytest.CaptureFixture[str]) -> None:
    usages = readme_usages()
    assert {command for command, _ in usages} >= {"demo", "status", "query", "submit", "emulator"}
    helps: dict[str, str] = {}
    for command, options in usages:
        assert command in COMMANDS, f"README shows `batch-pipelines {command}`, which does not exist"
        text = helps.setdefault(command, help_text(command, capsys))
        for option in options:
            assert re.search(rf"(?<![\w-]){option}\b", text), f"`{command} --help` has no {option}"
