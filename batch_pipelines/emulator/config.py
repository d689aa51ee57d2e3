"""The emulator's settings: one nested, validated structure, loadable from YAML/JSON and patchable at runtime.

Every key is documented in docs/emulator.md. Durations ending in ``_s`` are *simulated* seconds: the
emulator multiplies them by ``time_scale`` before waiting, except ``rate_limits.window_s`` which is real
time (a client's limiter reasons in real minutes).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Faults answered with an error, in a batch line or a realtime call alike.
ERROR_FAULTS = (
    "invalid_request",
    "server_error",
    "unavailable",
    "overloaded",
    "rate_limited",
    "insufficient_quota",
)
BATCH_FAULTS = (*ERROR_FAULTS, "no_response")
REALTIME_FAULTS = (*ERROR_FAULTS, "drop_connection", "slow")


class ConfigError(ValueError):
    """A config file or patch names an unknown key or carries a value of the wrong type."""


@dataclass(frozen=True)
class KeyLimits:
    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True)
class RateLimits:
    rpm: int | None = None
    tpm: int | None = None
    window_s: float = 60.0
    per_key: dict[str, KeyLimits] = field(default_factory=dict)

    def for_key(self, api_key: str) -> KeyLimits:
        override = self.per_key.get(api_key)
        if override is None:
            return KeyLimits(self.rpm, self.tpm)
        return KeyLimits(
            override.rpm if override.rpm is not None else self.rpm,
            override.tpm if override.tpm is not None else self.tpm,
        )


@dataclass(frozen=True)
class Lifecycle:
    validating_s: float = 1.0
    per_request_s: float = 0.05
    in_progress_min_s: float = 1.0
    in_progress_max_s: float = 5.0
    finalizing_s: float = 1.0
    stuck_finalizing_s: float = 3600.0
    cancelling_s: float = 1.0
    completion_window_s: float = 86400.0
    in_flight_fraction: float = 0.1


@dataclass(frozen=True)
class Limits:
    openai_max_requests: int = 50_000
    openai_max_file_bytes: int = 200 * 1024 * 1024
    openai_max_embedding_inputs: int = 50_000
    openai_enqueued_tokens: int = 2_000_000
    openai_enqueued_tokens_by_model: dict[str, int] = field(default_factory=dict)
    anthropic_max_requests: int = 100_000
    anthropic_max_bytes: int = 256 * 1024 * 1024

    def enqueued_token_limit(self, model: str) -> int:
        return self.openai_enqueued_tokens_by_model.get(model, self.openai_enqueued_tokens)


@dataclass(frozen=True)
class Faults:
    batch_error_rates: dict[str, float] = field(default_factory=dict)
    realtime_error_rates: dict[str, float] = field(default_factory=dict)
    slow_response_s: float = 2.0

    def __post_init__(self) -> None:
        _check_rates("faults.batch_error_rates", self.batch_error_rates, BATCH_FAULTS)
        _check_rates("faults.realtime_error_rates", self.realtime_error_rates, REALTIME_FAULTS)


@dataclass(frozen=True)
class ModelSettings:
    chars_per_token: float = 4.0
    reply_tokens: int = 24
    embedding_dimensions: int = 1536
    prompt_cache_min_tokens: int = 1024


@dataclass(frozen=True)
class EmulatorConfig:
    seed: int = 0
    time_scale: float = 1.0
    api_keys: tuple[str, ...] = ()
    rate_limits: RateLimits = field(default_factory=RateLimits)
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    limits: Limits = field(default_factory=Limits)
    faults: Faults = field(default_factory=Faults)
    model: ModelSettings = field(default_factory=ModelSettings)

    def scaled(self, simulated_seconds: float) -> float:
        """Real seconds for a simulated duration."""
        return simulated_seconds * self.time_scale

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    def patched(self, patch: dict[str, Any]) -> EmulatorConfig:
        """A new config: ``patch`` deep-merged over this one (dicts merge, everything else replaces)."""
        return config_from_dict(_deep_merge(self.to_dict(), patch))


def _check_rates(where: str, rates: dict[str, float], allowed: tuple[str, ...]) -> None:
    for name, rate in rates.items():
        if name not in allowed:
            raise ConfigError(f"{where}: unknown fault {name!r}; expected one of {', '.join(allowed)}")
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"{where}.{name}: rate must be between 0 and 1, got {rate!r}")


def _deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {key: _to_plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_to_plain(item) for item in value]
    return value


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where or 'config'}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}"
        )
    kwargs = {
        name: _coerce(fields[name].type, value, f"{where}.{name}".lstrip(".")) for name, value in data.items()
    }
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where or 'config'}: {error}") from error


_NESTED: dict[str, type] = {
    "RateLimits": RateLimits,
    "Lifecycle": Lifecycle,
    "Limits": Limits,
    "Faults": Faults,
    "ModelSettings": ModelSettings,
}


def _coerce(annotation: Any, value: Any, where: str) -> Any:
    text = str(annotation)
    if text in _NESTED:
        return _build(_NESTED[text], value, where)
    if text == "dict[str, KeyLimits]":
        _require(isinstance(value, dict), where, "a mapping of API key to {rpm, tpm}")
        return {str(key): _build(KeyLimits, limits, f"{where}.<key>") for key, limits in value.items()}
    if text.startswith("dict[str, "):
        _require(isinstance(value, dict), where, "a mapping")
        number = float if "float" in text else int
        return {str(key): _number(item, number, f"{where}.{key}") for key, item in value.items()}
    if text == "tuple[str, ...]":
        _require(isinstance(value, list | tuple) and all(isinstance(v, str) for v in value), where, "a list")
        return tuple(value)
    if text == "int | None":
        return None if value is None else _number(value, int, where)
    if text == "int":
        return _number(value, int, where)
    if text == "float":
        return _number(value, float, where)
    return value


def _number(value: Any, kind: type, where: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if kind is int and value != int(value):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    return kind(value)


def _require(condition: bool, where: str, expected: str) -> None:
    if not condition:
        raise ConfigError(f"{where}: expected {expected}")


def config_from_dict(data: dict[str, Any]) -> EmulatorConfig:
    config: EmulatorConfig = _build(EmulatorConfig, data, "")
    if config.time_scale <= 0:
        raise ConfigError(f"time_scale: must be positive, got {config.time_scale}")
    return config


def load_config_file(path: Path) -> dict[str, Any]:
    """The raw mapping in a YAML or JSON config file (JSON is YAML, but a .json file gets JSON's errors)."""
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read emulator config: {error}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the emulator config must be a mapping at the top level")
    return data
