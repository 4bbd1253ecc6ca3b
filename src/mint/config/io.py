"""Load configs from YAML with overrides, and write the resolved config beside a run's outputs."""

from __future__ import annotations

import dataclasses
import enum
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mint.config.overrides import apply_overrides, describe_yaml_error
from mint.config.schema import from_dict
from mint.errors import ConfigError

T = TypeVar("T")


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start + 1})") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({describe_yaml_error(error)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_config(cls: type[T], path: str | os.PathLike | None, overrides: Sequence[str] = ()) -> T:
    """Read YAML `path` (or start from the defaults when None), apply overrides, validate into `cls`."""
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides)
    try:
        return from_dict(cls, data)
    except ConfigError as error:
        source = f"{path}" if path is not None else "defaults"
        raise ConfigError(f"{source}: {error}") from None


def config_to_dict(config: Any) -> Any:
    """Plain (YAML/JSON-able) form of a config dataclass."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {
            field.name: config_to_dict(getattr(config, field.name)) for field in dataclasses.fields(config)
        }
    if isinstance(config, enum.Enum):
        return config.value
    if isinstance(config, (list, tuple)):
        return [config_to_dict(item) for item in config]
    if isinstance(config, dict):
        return {key: config_to_dict(value) for key, value in config.items()}
    return config


def save_config(config: Any, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
