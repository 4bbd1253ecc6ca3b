"""Typed configs: dataclasses with defaults defined once, YAML files, dotted overrides, validation."""

from mint.config.io import config_to_dict, load_config, save_config
from mint.config.overrides import apply_overrides, parse_override
from mint.config.schema import from_dict

__all__ = ["apply_overrides", "config_to_dict", "from_dict", "load_config", "parse_override", "save_config"]
