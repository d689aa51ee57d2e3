"""`batch-pipelines export PIPELINE PARTITION --out requests.jsonl` and
`batch-pipelines import PIPELINE PARTITION results.jsonl`: a partition's requests out to an offline engine
(e.g. `vllm run-batch -i requests.jsonl -o results.jsonl --model …`) and its answers back in."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from batch_pipelines.console.output import print_json
from batch_pipelines.workdir import resolve_workdir


def register(subparsers: Any) -> None:
    exporter = subparsers.add_parser(
        "export",
        help="write a partition's requests in the OpenAI batch input format (vllm run-batch reads it)",
        description="Write one partition's requests as OpenAI batch input lines. Items already answered "
        "(or failed for good) for the same request are left out unless --all.",
    )
    _common(exporter)
    exporter.add_argument("--out", type=Path, required=True, help="the JSONL file to write")
    exporter.add_argument("--all", action="store_true", help="include items that are already settled")
    exporter.set_defaults(handler=run_export)

    importer = subparsers.add_parser(
        "import",
        help="ingest an OpenAI batch output file (vllm run-batch writes one) into the results, exactly once",
        description="Add the answers in an OpenAI batch output file to one partition's results; importing "
        "the same file again adds nothing. Failed lines become dead letters.",
    )
    _common(importer)
    importer.add_argument("results_file", type=Path, help="the output JSONL file")
    importer.set_defaults(handler=run_import)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", help="pipeline name, as declared in its defs.yaml")
    parser.add_argument("partition", help="partition key, e.g. 2026-11-03")
    parser.add_argument("--workdir", default=None, help="working folder (default: $BATCH_PIPELINES_HOME)")
    parser.add_argument("--defs", type=Path, default=None, help="a defs.yaml declaring the pipeline")
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")


def run_export(args: argparse.Namespace) -> int:
    from batch_pipelines.interchange.pipelines import find_pipeline
    from batch_pipelines.interchange.requests_file import export_requests
    from batch_pipelines.storage.layout import StorageLayout

    try:
        spec = find_pipeline(args.pipeline, args.defs)
        layout = StorageLayout.for_workdir(resolve_workdir(args.workdir), spec.results_root)
        count = export_requests(spec, layout, args.partition, args.out, include_settled=args.all)
    except (ValueError, OSError) as error:
        print(f"export failed: {error}", file=sys.stderr)
        return 1
    if args.json:
        print_json(
            {"pipeline": spec.name, "partition": args.partition, "requests": count, "out": str(args.out)}
        )
    else:
        print(f"wrote {count} request(s) of {spec.name}/{args.partition} to {args.out}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from batch_pipelines.interchange.pipelines import find_pipeline
    from batch_pipelines.interchange.results_file import import_results
    from batch_pipelines.storage.layout import StorageLayout

    try:
        spec = find_pipeline(args.pipeline, args.defs)
        layout = StorageLayout.for_workdir(resolve_workdir(args.workdir), spec.results_root)
        outcome = import_results(spec, layout, args.partition, args.results_file)
    except (ValueError, OSError) as error:
        print(f"import failed: {error}", file=sys.stderr)
        return 1
    if args.json:
        print_json(
            {
                "pipeline": spec.name,
                "partition": args.partition,
                "answered": outcome.answered,
                "dead_letters": outcome.dead_letters,
                "already_answered": outcome.already_answered,
                "job_id": outcome.job_id,
            }
        )
        return 0
    print(
        f"{spec.name}/{args.partition}: {outcome.answered} new result(s), {outcome.dead_letters} dead "
        f"letter(s), {outcome.already_answered} already answered (job id {outcome.job_id})"
    )
    return 0
