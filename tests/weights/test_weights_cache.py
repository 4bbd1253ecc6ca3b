"""The cache of conversions: converted once, reused, digest-checked, rebuilt when corrupt, never half-written.

Each test gets its own empty cache and converts Whisper tiny.en (about a second) into it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from weights_testing import require_weights

from mint.errors import CheckpointError
from mint.storage import verify_digests
from mint.weights import ctranslate2_whisper, prepare_named, resolve_weights
from mint.weights.cache import ENV_VAR, weights_dir
from mint.weights.registry import file_path


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def conversions(monkeypatch) -> list[Path]:
    """Records the output directory of every Whisper conversion that runs."""
    runs: list[Path] = []
    convert = ctranslate2_whisper.convert_whisper

    def counted(parts, config_file, tokenizer_file, output_dir):
        runs.append(output_dir)
        convert(parts, config_file, tokenizer_file, output_dir)

    monkeypatch.setattr(ctranslate2_whisper, "convert_whisper", counted)
    return runs


@pytest.fixture(scope="module")
def tiny_en():
    return require_weights("whisper-tiny.en")


def test_converted_once_then_reused(cache, conversions, tiny_en) -> None:
    first = prepare_named(tiny_en)
    assert first.parent == cache and len(conversions) == 1
    modified = (first / "model.safetensors").stat().st_mtime_ns
    assert resolve_weights("weights:whisper-tiny.en", "encoder") == str(first)
    assert len(conversions) == 1
    assert (first / "model.safetensors").stat().st_mtime_ns == modified
    # Only the conversion and its lock file are left: no staging directory.
    assert sorted(p.name for p in cache.iterdir()) == sorted([first.name, f".{first.name}.lock"])


def test_a_ctranslate2_directory_path_shares_the_named_conversion(cache, conversions, tiny_en) -> None:
    named = prepare_named(tiny_en)
    package_dir = file_path(tiny_en.files[0]).parent
    assert resolve_weights(str(package_dir), "encoder") == str(named)
    assert len(conversions) == 1


def test_a_corrupted_conversion_is_detected_and_converted_again(cache, conversions, tiny_en, caplog) -> None:
    directory = prepare_named(tiny_en)
    weights = directory / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one bit pattern in the last weight changes; the size stays
    weights.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="mint.weights.cache"):
        assert prepare_named(tiny_en) == directory
    assert "fail their digest check" in caplog.text and "model.safetensors" in caplog.text
    assert len(conversions) == 2
    verify_digests(directory)


def test_an_interrupted_conversion_leaves_nothing_behind(cache, monkeypatch, tiny_en) -> None:
    def crash(parts, config_file, tokenizer_file, output_dir):
        (output_dir / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(ctranslate2_whisper, "convert_whisper", crash)
        with pytest.raises(KeyboardInterrupt):
            prepare_named(tiny_en)
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []
    verify_digests(prepare_named(tiny_en))


def test_the_cache_location(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert weights_dir() == tmp_path / ".cache" / "mint" / "weights"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert weights_dir() == tmp_path / "xdg" / "mint" / "weights"
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "mine"))
    assert weights_dir() == tmp_path / "mine"


def test_a_cache_that_cannot_be_created_is_an_error_naming_it(monkeypatch, tmp_path, tiny_en) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(ENV_VAR, str(blocker / "cache"))
    with pytest.raises(
        CheckpointError, match=rf"{blocker / 'cache'}: cannot create the weights cache .*{ENV_VAR}"
    ):
        prepare_named(tiny_en)
