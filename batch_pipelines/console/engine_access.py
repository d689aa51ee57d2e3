"""Opening the engine for a command: the store (under the working folder, or a shared one by URL), and a
provider client whose key comes from an environment variable (never from the command line, so it stays
out of shell history)."""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from batch_pipelines.engine import BatchManager, BatchStore
from batch_pipelines.providers import make_provider
from batch_pipelines.storage.locations import STORE_URL_ENV, DataLocations, add_location_options
from batch_pipelines.workdir import make_workdir

DEFAULT_KEY_ENV = "BATCH_PIPELINES_API_KEY"
BASE_URL_ENV = "BATCH_PIPELINES_BASE_URL"


class CommandError(RuntimeError):
    """Something the user can fix; printed without a traceback."""


def add_workdir_option(parser: argparse.ArgumentParser) -> None:
    """--workdir, and --store-url for a shared store (see storage.locations)."""
    add_location_options(parser, tables=False)


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


def store_location(args: argparse.Namespace, *, must_exist: bool = True) -> str | Path:
    """The store a command opens: --store-url / $BATCH_PIPELINES_STORE_URL, else the working folder's."""
    locations = DataLocations.from_args(args)
    if must_exist and not locations.store_exists():
        raise CommandError(
            f"no batch store at {locations.describe_store()}: nothing was submitted from this working "
            f"folder (a shared store: --store-url or ${STORE_URL_ENV})"
        )
    return locations.store_location()


@asynccontextmanager
async def open_store(args: argparse.Namespace, *, must_exist: bool = True) -> AsyncIterator[BatchStore]:
    location = store_location(args, must_exist=must_exist)
    if isinstance(location, Path):
        make_workdir(location.parent)
    store = BatchStore(location)
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
