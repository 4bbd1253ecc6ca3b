"""Configs are immutable once built: no field of any config reachable from a run's config can be
reassigned or grown in place, so a config handed to a model, trainer or server is the one it keeps
(changes go through `dataclasses.replace`)."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from mint.config import load_config
from mint.demo.config import DemoConfig
from mint.modeling import MintConfig
from mint.training.config import InstructConfig, PretrainConfig

ROOTS = (PretrainConfig, InstructConfig, DemoConfig, MintConfig)


def _config_classes() -> list[type]:
    """Every dataclass reachable from the root configs through field types."""
    found: dict[type, None] = {}

    def walk(cls: type) -> None:
        if cls in found:
            return
        found[cls] = None
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            pending = [hints[field.name]]
            while pending:
                tp = pending.pop()
                pending.extend(typing.get_args(tp))
                if isinstance(tp, type) and dataclasses.is_dataclass(tp):
                    walk(tp)

    for root in ROOTS:
        walk(root)
    return list(found)


def test_the_walk_reaches_the_nested_configs():
    names = {cls.__name__ for cls in _config_classes()}
    assert {"BridgeConfig", "EncoderConfig", "LLMConfig", "TrainerConfig", "NegativeSampling"} <= names


@pytest.mark.parametrize("cls", _config_classes(), ids=lambda cls: cls.__name__)
def test_every_config_is_frozen_and_holds_no_mutable_container(cls):
    assert cls.__dataclass_params__.frozen, f"{cls.__name__} is not frozen"
    for field in dataclasses.fields(cls):
        pending = [typing.get_type_hints(cls)[field.name]]
        while pending:
            tp = pending.pop()
            assert typing.get_origin(tp) not in (list, dict, set) and tp not in (list, dict, set), (
                f"{cls.__name__}.{field.name}: a mutable container ({tp}); use a tuple"
            )
            pending.extend(typing.get_args(tp))


def test_a_loaded_config_refuses_assignment_and_replace_makes_a_new_one():
    config = load_config(
        PretrainConfig, None, ["trainer.max_steps=7", 'data.caption_templates=["a {label}"]']
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.trainer.max_steps = 8
    assert config.data.caption_templates == ("a {label}",)
    changed = dataclasses.replace(config, trainer=dataclasses.replace(config.trainer, max_steps=8))
    assert (changed.trainer.max_steps, config.trainer.max_steps) == (8, 7)
