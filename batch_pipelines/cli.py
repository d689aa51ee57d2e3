"""The `batch-pipelines` command.

Each subcommand lives next to the concept it drives, in a module exposing
``register(subparsers) -> None``; the parser it adds sets ``handler`` (a callable taking the parsed
namespace and returning an exit code). This file only collects them, importing each lazily enough that
`batch-pipelines --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMAND_MODULES: tuple[str, ...] = (
    "batch_pipelines.emulator.command",
    "batch_pipelines.demo.command",
    "batch_pipelines.storage.query_command",
    "batch_pipelines.console.job_commands",
    "batch_pipelines.console.cost_command",
    "batch_pipelines.console.report_command",
    "batch_pipelines.console.spec_reference",
    "batch_pipelines.interchange.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batch-pipelines",
        description="Run language-model workloads in batch: throughput and cost first.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue  # a subcommand not written yet
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    exit_code: int = args.handler(args)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
