"""Dotted command-line overrides: `trainer.max_steps=20 data.captions=[a,b] model.bridge.init=minilm`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from mint.errors import ConfigError


def describe_yaml_error(error: yaml.YAMLError) -> str:
    """One line: where the parser stopped and why (PyYAML's own text spans several lines)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into a key path and a value parsed as a YAML scalar or flow collection."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"override {text!r}: expected KEY=VALUE with a dotted KEY, e.g. trainer.max_steps=20"
        )
    path = key.strip().split(".")
    if any(not part for part in path):
        raise ConfigError(f"override {text!r}: empty component in key {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(
            f"override {text!r}: value is not valid YAML ({describe_yaml_error(error)})"
        ) from None
    return path, value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a deep copy of `data` with each override set. Unknown keys are reported by validation."""
    result = _deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for depth, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(path[: depth + 1])
                raise ConfigError(f"override {text!r}: {where} is a value, not a section")
            node = child
        node[path[-1]] = value
    return result


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _deep_copy(value) if isinstance(value, Mapping) else value for key, value in data.items()}
