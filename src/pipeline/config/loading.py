"""Building the configuration: defaults < YAML file < environment < ``--set`` overrides."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pipeline.config.model import PipelineConfig

ENV_PREFIX = "PIPELINE__"


class ConfigError(ValueError):
    """A configuration file, override or environment variable is invalid."""


def _parse_value(raw: str) -> Any:
    """Parse an override value as YAML so ``2``, ``true``, ``null`` and ``[a, b]`` get their types."""
    try:
        return yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        return raw


def _set_dotted(target: dict, dotted: str, value: Any) -> None:
    keys = [k for k in dotted.split(".") if k]
    if not keys:
        raise ConfigError(f"empty configuration key in override {dotted!r}")
    node = target
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def env_overrides(environ: dict[str, str] | None = None) -> list[str]:
    """``PIPELINE__TRAINING__EPOCHS=2`` becomes the override ``training.epochs=2``."""
    environ = os.environ if environ is None else environ
    return [
        f"{name[len(ENV_PREFIX) :].lower().replace('__', '.')}={value}"
        for name, value in sorted(environ.items())
        if name.startswith(ENV_PREFIX)
    ]


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    environ: dict[str, str] | None = None,
) -> PipelineConfig:
    """Build the configuration: defaults < YAML file < environment < ``--set KEY=VALUE`` overrides.

    Raises ConfigError naming the file or key at fault.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        raw = loaded or {}
    for item in [*env_overrides(environ), *(overrides or [])]:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        _set_dotted(raw, key.strip(), _parse_value(value.strip()))
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        source = f" (from {path})" if path else ""
        raise ConfigError(f"invalid configuration{source}: {where}: {first['msg']}") from exc
