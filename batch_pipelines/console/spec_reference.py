"""`batch-pipelines spec-reference [--out FILE]`: the pipeline-spec reference, rendered from the pydantic
models themselves so the documentation cannot drift from the code (a test compares the committed
docs/spec-reference.md with this output)."""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from batch_pipelines.pipeline.spec import PipelineSpec

INTRO = """# Pipeline spec reference

Generated from `batch_pipelines/pipeline/spec.py` by `batch-pipelines spec-reference --out
docs/spec-reference.md`; do not edit by hand. A pipeline is declared in YAML under
`batch_pipelines/defs/<name>/defs.yaml` (`type: batch_pipelines.components.BatchPipelineComponent`,
the fields below under `attributes:`) or passed as a mapping to
`batch_pipelines.components.build_pipeline_defs(spec)`. Unknown fields are refused, and every error names
the field. What a pipeline writes — the results table's columns, `path` among them (which route answered
each row: `batch`, `realtime`, `packed`, `local` or `imported`) — is listed in docs/how-it-works.md,
"The results table".
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("spec-reference", help="print the pipeline-spec reference (Markdown)")
    parser.add_argument("--out", type=Path, default=None, help="write it to this file instead of stdout")
    parser.set_defaults(handler=spec_reference_command)


def spec_reference_command(args: argparse.Namespace) -> int:
    text = render_spec_reference()
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    return 0


MODEL_PARAMETERS = """## Model parameters by family

`params` (and `max_tokens` / `temperature`) go out in the form each model family takes, in batch lines
and realtime calls alike (`batch_pipelines/providers/openai_params.py`):

- OpenAI reasoning models (`gpt-5*`, `o1*`, `o3*`, `o4*`): the output cap goes out as
  `max_completion_tokens` (a `max_tokens` is sent under that name); `temperature` and `top_p` only at
  their default of 1 (any other value is refused before upload, naming the request);
  `reasoning_effort` is passed through.
- Older OpenAI chat models (`gpt-4o*`, `gpt-4.1*`, …): `max_tokens`, `temperature` and `top_p` as given;
  `reasoning_effort` is refused before upload.

The API itself answers the refused forms with `400 unsupported_parameter` (`max_tokens` on a reasoning
model) or `400 unsupported_value` (a non-default `temperature`): a whole batch of such lines would fail
line by line, so they are caught first. Anthropic and Bedrock models take `max_tokens` and sampling as
given.

Prompt caching: OpenAI caches a repeated prompt prefix of 1,024 tokens or more on its own; Anthropic
(and Claude on Bedrock) caches the prompt up to a block marked `cache_control`, e.g.
`params: {system: [{type: text, text: "<long instructions>", cache_control: {type: ephemeral}}]}`.
Results get `cached_input_tokens` (read from the cache) and `cache_write_input_tokens` (Anthropic cache
writes), both included in `input_tokens`, and costs price them at the model's published rates
(OpenAI's cached-input price; Anthropic 0.1x input for reads, 1.25x for 5-minute writes);
`batch-pipelines cost` shows the saving as `cache_saved_usd`.
"""


def render_spec_reference() -> str:
    sections = [INTRO]
    for model in _models_in_order(PipelineSpec):
        sections.append(_render_model(model))
    sections.append(MODEL_PARAMETERS)
    return "\n".join(sections)


def _models_in_order(root: type[BaseModel]) -> list[type[BaseModel]]:
    ordered: list[type[BaseModel]] = []
    pending = [root]
    while pending:
        model = pending.pop(0)
        if model in ordered:
            continue
        ordered.append(model)
        for field in model.model_fields.values():
            pending.extend(_nested_models(field.annotation))
    return ordered


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _nested_models(arg)]


def _render_model(model: type[BaseModel]) -> str:
    doc = inspect.cleandoc(model.__doc__ or "")
    lines = [f"## `{model.__name__}`", ""]
    if doc:
        lines += [doc, ""]
    lines += ["| field | type | default | description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        cells = [f"`{name}`", _type_name(field.annotation), _default(field), _describe(field)]
        lines.append("| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " or ".join(f"`{json.dumps(value)}`" for value in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in get_args(annotation))
    if origin is not None:
        inner = ", ".join(_type_name(arg) for arg in get_args(annotation))
        return f"{origin.__name__}[{inner}]"
    if annotation is type(None):
        return "null"
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "see its section"
        return f"`{json.dumps(value)}`"
    if field.default is PydanticUndefined:
        return "required"
    return f"`{json.dumps(field.default, default=str)}`"


def _describe(field: FieldInfo) -> str:
    text = field.description or ""
    bounds = [
        f"{label} {getattr(meta, attr)}"
        for meta in field.metadata
        for attr, label in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("min_length", "min length"))
        if getattr(meta, attr, None) is not None
    ]
    patterns = [getattr(meta, "pattern", None) for meta in field.metadata]
    bounds += [f"pattern `{pattern}`" for pattern in patterns if pattern]
    if bounds:
        text = f"{text} ({', '.join(bounds)})" if text else ", ".join(bounds)
    return re.sub(r"\s+", " ", text).strip()
