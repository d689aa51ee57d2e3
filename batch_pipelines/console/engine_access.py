"""Opening the engine for a command: the store under the working folder, and a provider client whose key
comes from an environment variable (never from the command line, so it stays out of shell history)."""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from batch_pipelines.engine import BatchManager, BatchStore
from batch_pipelines.providers import make_provider
from batch_pipelines.storage.layout import StorageLayout
from batch_pipelines.workdir import resolve_workdir

DEFAULT_KEY_ENV = "BATCH_PIPELINES_API_KEY"
BASE_URL_ENV = "BATCH_PIPELINES_BASE_URL"


class CommandError(RuntimeError):
    """Something the user can fix; printed without a traceback."""


def add_workdir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", default=None, help="working folder (default: $BATCH_PIPELINES_HOME)")


def add_provider_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", default=None, help=f"provider endpoint (default: ${BASE_URL_ENV})")
    parser.add_argument(
        "--api-key-env",
        default=DEFAULT_KEY_ENV,
        metavar="NAME",
        help=f"environment variable holding the provider key (default: {DEFAULT_KEY_ENV})",
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def store_path(args: argparse.Namespace, *, must_exist: bool = True) -> Path:
    path = StorageLayout.for_workdir(resolve_workdir(args.workdir)).store_path
    if must_exist and not path.exists():
        raise CommandError(f"no batch store at {path}: nothing was submitted from this working folder")
    return path


@asynccontextmanager
async def open_store(args: argparse.Namespace, *, must_exist: bool = True) -> AsyncIterator[BatchStore]:
    path = store_path(args, must_exist=must_exist)
    path.parent.mkdir(parents=True, exist_ok=True)
    store = BatchStore(path)
    await store.initialize()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def open_manager(
    args: argparse.Namespace, store: BatchStore, *, provider: str, model: str
) -> AsyncIterator[BatchManager]:
    key = os.environ.get(args.api_key_env)
    if not key:
        raise CommandError(
            f"set the provider key in ${args.api_key_env} (or name another with --api-key-env)"
        )
    client = make_provider(
        provider, model=model, base_url=args.base_url or os.environ.get(BASE_URL_ENV) or None, api_key=key
    )
    try:
        yield BatchManager(provider=client, store=store)
    finally:
        await client.aclose()
