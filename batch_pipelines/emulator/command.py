"""`batch-pipelines emulator`: start the local OpenAI + Anthropic provider emulator."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from batch_pipelines.emulator import API_KEYS_ENV
from batch_pipelines.emulator.config import ConfigError, config_from_dict, load_config_file


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "emulator",
        help="run a local, wire-compatible OpenAI + Anthropic emulator",
        description="Serve the OpenAI and Anthropic batch and realtime APIs locally, with rate limits, "
        "a scaled batch clock and fault injection (see docs/emulator.md).",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8800, help="port; 0 picks a free one (default 8800)")
    parser.add_argument("--config", type=Path, help="YAML or JSON file with emulator settings")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        default=[],
        metavar="KEY",
        help=f"accepted API key (repeatable; visible to other users in `ps`: prefer ${API_KEYS_ENV}, "
        "comma-separated); with none, any non-empty key is accepted",
    )
    parser.add_argument("--rpm", type=int, help="realtime requests per minute per key (default unlimited)")
    parser.add_argument("--tpm", type=int, help="realtime tokens per minute per key (default unlimited)")
    parser.add_argument("--time-scale", type=float, help="multiplies every simulated duration (default 1.0)")
    parser.add_argument("--seed", type=int, help="seed for fault draws and result order (default 0)")
    parser.add_argument("--state-dir", type=Path, help="keep files and batches here across restarts")


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The config mapping: the file first, then flags given on the command line on top."""
    data = load_config_file(args.config) if args.config else {}
    from_environment = [key for key in os.environ.get(API_KEYS_ENV, "").split(",") if key]
    if args.api_keys or from_environment:
        data["api_keys"] = [*from_environment, *args.api_keys]
    if args.time_scale is not None:
        data["time_scale"] = args.time_scale
    if args.seed is not None:
        data["seed"] = args.seed
    limits = dict(data.get("rate_limits") or {})
    if args.rpm is not None:
        limits["rpm"] = args.rpm
    if args.tpm is not None:
        limits["tpm"] = args.tpm
    if limits:
        data["rate_limits"] = limits
    return data


def run(args: argparse.Namespace) -> int:
    from batch_pipelines.emulator.server import serve

    try:
        config = config_from_dict(settings_from_args(args))
    except ConfigError as error:
        print(f"batch-pipelines emulator: {error}", file=sys.stderr)
        return 2
    try:
        serve(config, args.host, args.port, args.state_dir)
    except OSError as error:
        print(f"batch-pipelines emulator: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m batch_pipelines.emulator")
    add_arguments(parser)
    return run(parser.parse_args(argv))
