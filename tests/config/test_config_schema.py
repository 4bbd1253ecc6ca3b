from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from mint.config import apply_overrides, config_to_dict, from_dict, load_config, save_config
from mint.errors import ConfigError


@dataclass
class Optim:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class Trainer:
    max_steps: int = 100
    bf16: bool = False
    optim: Optim = field(default_factory=Optim)
    precision: Literal["fp32", "bf16"] = "fp32"
    resume_from: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class Run:
    output_dir: str = "runs/x"
    trainer: Trainer = field(default_factory=Trainer)


def test_defaults_and_nested_values():
    run = from_dict(Run, {"trainer": {"max_steps": 7, "optim": {"lr": 3}}})
    assert run.trainer.max_steps == 7
    assert run.trainer.optim.lr == 3.0 and isinstance(run.trainer.optim.lr, float)
    assert run.trainer.optim.betas == (0.9, 0.999)
    assert run.output_dir == "runs/x"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"trainer": {"max_stpes": 3}}, "trainer.max_stpes"),
        ({"trainer": {"max_steps": "ten"}}, "trainer.max_steps"),
        ({"trainer": {"max_steps": 2.5}}, "trainer.max_steps"),
        ({"trainer": {"bf16": "yes"}}, "trainer.bf16"),
        ({"trainer": {"optim": {"betas": [0.9]}}}, "trainer.optim.betas"),
        ({"trainer": {"precision": "fp8"}}, "trainer.precision"),
        ({"trainer": {"tags": ["a", 3]}}, "trainer.tags[1]"),
        ({"trainer": 5}, "trainer"),
        ({"extra": 1}, "extra"),
    ],
)
def test_errors_name_the_dotted_key(data, named):
    with pytest.raises(ConfigError) as info:
        from_dict(Run, data)
    assert named in str(info.value)


def test_bool_is_not_an_int_and_none_only_when_optional():
    with pytest.raises(ConfigError):
        from_dict(Trainer, {"max_steps": True})
    assert from_dict(Trainer, {"resume_from": None}).resume_from is None
    with pytest.raises(ConfigError, match="max_steps"):
        from_dict(Trainer, {"max_steps": None})


def test_overrides_parse_yaml_scalars_and_create_sections():
    data = apply_overrides(
        {"trainer": {"max_steps": 1}},
        ["trainer.max_steps=20", "trainer.optim.lr=2e-3", "trainer.tags=[a,b]", "output_dir=/tmp/o"],
    )
    run = from_dict(Run, data)
    assert run.trainer.max_steps == 20
    assert run.trainer.optim.lr == pytest.approx(2e-3)
    assert run.trainer.tags == ["a", "b"]
    assert run.output_dir == "/tmp/o"


def test_override_errors():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["trainer.max_steps"])
    with pytest.raises(ConfigError, match="output_dir is a value"):
        apply_overrides({"output_dir": "x"}, ["output_dir.sub=1"])


def test_yaml_round_trip(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("trainer:\n  max_steps: 5\n  optim:\n    lr: 0.01\n")
    run = load_config(Run, path, ["trainer.bf16=true"])
    assert run.trainer.max_steps == 5 and run.trainer.bf16 is True
    saved = save_config(run, tmp_path / "out" / "config.yaml")
    again = load_config(Run, saved)
    assert config_to_dict(again) == config_to_dict(run)


def test_load_config_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("trainer:\n  max_steps: [1, 2]\n")
    with pytest.raises(ConfigError) as info:
        load_config(Run, path)
    assert str(path) in str(info.value) and "trainer.max_steps" in str(info.value)
    with pytest.raises(ConfigError, match="not found"):
        load_config(Run, tmp_path / "missing.yaml")


@dataclass
class Experiment:
    trainer: Trainer = field(default_factory=lambda: Trainer(max_steps=600, optim=Optim(lr=0.5)))


def test_partly_given_section_keeps_its_own_defaults():
    experiment = from_dict(Experiment, {"trainer": {"bf16": True, "optim": {"betas": [0.8, 0.9]}}})
    assert experiment.trainer.max_steps == 600 and experiment.trainer.bf16 is True
    assert experiment.trainer.optim.lr == 0.5 and experiment.trainer.optim.betas == (0.8, 0.9)
    assert from_dict(Experiment, {}).trainer.max_steps == 600
