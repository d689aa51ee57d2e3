"""Build a JSON value that satisfies a JSON schema (the subset structured outputs use), deterministically.

Supports object (properties, required, additionalProperties), array (items, minItems, maxItems), string
(enum, const, minLength, maxLength, format date/date-time/email/uri), number/integer (minimum, maximum,
exclusive bounds), boolean, null, enum/const anywhere, anyOf/oneOf (first branch), type lists, and local
``$ref`` into ``$defs``/``definitions``.
"""

from __future__ import annotations

import hashlib
from typing import Any

_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet")


def instance_for_schema(schema: dict[str, Any], seed_text: str = "") -> Any:
    """A value valid for ``schema``; the same schema and seed text always give the same value."""
    return _Builder(schema, seed_text).build(schema, "$", depth=0)


class _Builder:
    def __init__(self, root: dict[str, Any], seed_text: str) -> None:
        self.root = root
        self.seed_text = seed_text

    def _pick(self, path: str, modulo: int) -> int:
        digest = hashlib.blake2b(f"{self.seed_text}|{path}".encode(), digest_size=4).digest()
        return int.from_bytes(digest, "big") % max(modulo, 1)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while "$ref" in schema and seen < 32:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#/"):
                raise ValueError(f"only local $ref is supported, got {ref!r}")
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            schema = target
            seen += 1
        return schema

    def build(self, schema: Any, path: str, depth: int) -> Any:
        if schema is True or schema == {}:
            return self._word(path)
        if not isinstance(schema, dict):
            return None
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            options = schema["enum"]
            return options[self._pick(path, len(options))]
        for combinator in ("anyOf", "oneOf"):
            if schema.get(combinator):
                branches = [b for b in schema[combinator] if self._resolve(b).get("type") != "null"]
                return self.build((branches or schema[combinator])[0], path, depth)
        if schema.get("allOf"):
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged = _merge_schemas(merged, self._resolve(part))
            return self.build(merged, path, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            non_null = [k for k in kind if k != "null"]
            kind = non_null[0] if non_null else "null"
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        return self._build_typed(kind, schema, path, depth)

    def _build_typed(self, kind: str, schema: dict[str, Any], path: str, depth: int) -> Any:
        if kind == "object":
            return self._object(schema, path, depth)
        if kind == "array":
            return self._array(schema, path, depth)
        if kind == "string":
            return self._string(schema, path)
        if kind == "integer":
            return int(self._number(schema, path, integer=True))
        if kind == "number":
            return self._number(schema, path, integer=False)
        if kind == "boolean":
            return self._pick(path, 2) == 0
        if kind == "null":
            return None
        raise ValueError(f"unsupported JSON schema type {kind!r} at {path}")

    def _object(self, schema: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        properties: dict[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", ()))
        # Structured outputs require every property; fill all of them (depth-bounded for recursive schemas).
        names = list(properties) if depth < 6 else [name for name in properties if name in required]
        return {name: self.build(properties[name], f"{path}.{name}", depth + 1) for name in names}

    def _array(self, schema: dict[str, Any], path: str, depth: int) -> list[Any]:
        minimum = int(schema.get("minItems", 0))
        maximum = int(schema.get("maxItems", max(minimum, 3)))
        count = max(minimum, min(maximum, 1 + self._pick(path, 2))) if depth < 6 else minimum
        items = schema.get("items", {})
        return [self.build(items, f"{path}[{index}]", depth + 1) for index in range(count)]

    def _string(self, schema: dict[str, Any], path: str) -> str:
        fmt = schema.get("format")
        if fmt == "date-time":
            return "2026-01-02T03:04:05Z"
        if fmt == "date":
            return "2026-01-02"
        if fmt == "email":
            return f"{self._word(path)}@example.com"
        if fmt in ("uri", "url"):
            return f"https://example.com/{self._word(path)}"
        text = self._word(path)
        minimum = int(schema.get("minLength", 0))
        maximum = schema.get("maxLength")
        while len(text) < minimum:
            text += "x"
        if maximum is not None:
            text = text[: int(maximum)]
        return text

    def _number(self, schema: dict[str, Any], path: str, integer: bool) -> float:
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        low_f = float(low) if low is not None else (float(high) - 10 if high is not None else 0.0)
        high_f = float(high) if high is not None else low_f + 10
        if "exclusiveMinimum" in schema:
            low_f += 1 if integer else 1e-6
        if "exclusiveMaximum" in schema:
            high_f -= 1 if integer else 1e-6
        if integer:
            low_i, high_i = int(-(-low_f // 1)), int(high_f // 1)
            return float(low_i + self._pick(path, high_i - low_i + 1)) if high_i >= low_i else float(low_i)
        return round(low_f + (high_f - low_f) * self._pick(path, 1000) / 1000, 3)

    def _word(self, path: str) -> str:
        return _WORDS[self._pick(path, len(_WORDS))]


def _merge_schemas(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    merged = {**left, **right}
    if "properties" in left and "properties" in right:
        merged["properties"] = {**left["properties"], **right["properties"]}
    if "required" in left and "required" in right:
        merged["required"] = [*left["required"], *right["required"]]
    return merged
