"""`weights:NAME` and paths in configs: what the factories resolve, what they refuse (naming the reference and
the command that fixes it), and saved models that keep the reference, not the machine's cache path."""

from __future__ import annotations

import dataclasses
import json

import pytest
from weights_testing import require_weights

from mint.config import load_config
from mint.encoders import EncoderConfig, build_encoder
from mint.errors import CheckpointError, ConfigError
from mint.llm import LLMConfig, load_llm
from mint.modeling import MintConfig, MintModel
from mint.weights import REGISTRY, resolve_weights
from mint.weights.cache import ENV_VAR
from mint.weights.registry import Package, WeightFile
from mint_testing import tiny_model_overrides

ABSENT = Package("mint-test-absent-weights", "1.0.0", "0" * 64, 1, "MIT")


@pytest.fixture
def absent_entry(monkeypatch):
    """A registry entry whose package is not installed."""
    entry = dataclasses.replace(
        REGISTRY["whisper-tiny.en"],
        name="absent-test",
        packages=(ABSENT,),
        files=(WeightFile(ABSENT.name, "mint_test_absent/model.bin", "0" * 64),),
    )
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    return entry


def test_an_unknown_name_is_refused_naming_it_and_the_known_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"encoder.name_or_path: no named weights 'unknown'; known: \[.*whisper"
    ):
        build_encoder(EncoderConfig(kind="whisper", name_or_path="weights:unknown"))
    with pytest.raises(ConfigError, match=r"llm.name_or_path: no named weights 'unknown'"):
        load_llm(LLMConfig(name_or_path="weights:unknown"))


def test_weights_for_another_part_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"names llm weights .*expected encoder weights"):
        build_encoder(EncoderConfig(kind="whisper", name_or_path="weights:smollm2-135m-instruct"))
    with pytest.raises(ConfigError, match=r"names encoder weights .*expected llm weights"):
        load_llm(LLMConfig(name_or_path="weights:whisper-tiny.en"))


def test_weights_not_installed_name_the_package_and_the_fetch_command(absent_entry) -> None:
    with pytest.raises(CheckpointError) as caught:
        build_encoder(EncoderConfig(kind="whisper", name_or_path="weights:absent-test"))
    message = str(caught.value)
    assert "mint-test-absent-weights==1.0.0 is not installed" in message
    assert "`mint weights fetch absent-test`" in message


def test_a_package_file_that_fails_its_pinned_digest_is_refused(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    real = require_weights("whisper-tiny.en")
    altered = dataclasses.replace(
        real, files=(dataclasses.replace(real.files[0], sha256="f" * 64), *real.files[1:])
    )
    monkeypatch.setitem(REGISTRY, real.name, altered)
    with pytest.raises(CheckpointError, match=r"model\.bin does not match its pinned SHA-256 ffff"):
        resolve_weights("weights:whisper-tiny.en", "encoder")
    assert not any(path.is_dir() for path in tmp_path.iterdir())


def test_other_references_pass_through_unchanged(tmp_path) -> None:
    assert resolve_weights("openai/whisper-tiny", "encoder") == "openai/whisper-tiny"
    assert resolve_weights(str(tmp_path), "llm") == str(tmp_path)


def test_a_saved_model_keeps_the_weights_references(tiny_en_dir, smollm2_dir, tmp_path) -> None:
    overrides = [item.removeprefix("model.") for item in tiny_model_overrides()]
    overrides += [
        "encoder.kind=whisper",
        "encoder.name_or_path=weights:whisper-tiny.en",
        "encoder.window_seconds=2.0",
        "llm.name_or_path=weights:smollm2-135m-instruct",
        "llm.max_instruction_length=16",
        "llm.max_response_length=8",
    ]
    model = MintModel.from_config(load_config(MintConfig, None, overrides))
    folder = model.save_pretrained(tmp_path / "saved")
    saved = json.loads((folder / "config.json").read_text())["config"]
    assert saved["encoder"]["name_or_path"] == "weights:whisper-tiny.en"
    assert saved["llm"]["name_or_path"] == "weights:smollm2-135m-instruct"
    loaded = MintModel.from_pretrained(folder)
    assert loaded.config.encoder.name_or_path == "weights:whisper-tiny.en"
    assert loaded.encoder.hidden_size == 384 and loaded.llm.hidden_size == 576
