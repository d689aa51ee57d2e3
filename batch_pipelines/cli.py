"""The `batch-pipelines` command.

Each subcommand lives next to the concept it drives, in a module exposing
``register(subparsers) -> None``; the parser it adds sets ``handler`` (a callable taking the parsed
namespace and returning an exit code). This file maps command names to those modules and imports only
the one a command line names (all of them only for the overview `--help`), so `batch-pipelines query`
does not pay for importing Dagster.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

_JOB_COMMANDS = "batch_pipelines.console.job_commands"
_INTERCHANGE = "batch_pipelines.interchange.commands"

COMMANDS: dict[str, str] = {
    "emulator": "batch_pipelines.emulator.command",
    "demo": "batch_pipelines.demo.command",
    "query": "batch_pipelines.storage.query_command",
    "status": _JOB_COMMANDS,
    "submit": _JOB_COMMANDS,
    "results": _JOB_COMMANDS,
    "cancel": _JOB_COMMANDS,
    "retry": _JOB_COMMANDS,
    "cost": "batch_pipelines.console.cost_command",
    "report": "batch_pipelines.console.report_command",
    "spec-reference": "batch_pipelines.console.spec_reference",
    "doctor": "batch_pipelines.console.doctor_command",
    "export": _INTERCHANGE,
    "import": _INTERCHANGE,
}


def invoked_as() -> str:
    """The command a user can type to run this CLI again, e.g. `.venv/bin/batch-pipelines` when the
    virtual environment is not activated."""
    script = Path(sys.argv[0])
    if script.name != "batch-pipelines":
        return "batch-pipelines"
    if shutil.which("batch-pipelines") == str(script.resolve()):
        return "batch-pipelines"
    return shlex.quote(os.path.relpath(script))


def build_parser(modules: Iterable[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batch-pipelines",
        description="Run language-model workloads in batch: throughput and cost first. Errors print one "
        "line; add --debug anywhere (or set BATCH_PIPELINES_DEBUG=1) to see the traceback.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in dict.fromkeys(COMMANDS.values() if modules is None else modules):
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from batch_pipelines.console.failures import run_reporting_failures, split_debug_flag

    arguments, debug = split_debug_flag(list(sys.argv[1:] if argv is None else argv))
    # The top-level parser takes no options but -h, so the first other word is the command's name.
    named = next((word for word in arguments if not word.startswith("-")), None)
    modules = [COMMANDS[named]] if named in COMMANDS else None
    args = build_parser(modules).parse_args(arguments)
    return run_reporting_failures(args.handler, args, debug)


if __name__ == "__main__":
    sys.exit(main())
