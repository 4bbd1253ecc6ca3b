"""`resolve_weights`: what the encoder and LLM factories call to turn a `name_or_path` into something
Hugging Face loads.

* `weights:NAME` - named weights from an installed package (`mint.weights.registry`), converted once
  into the cache when they are not in Hugging Face's layout;
* a CTranslate2 / faster-whisper Whisper directory (encoder only) - converted once into the cache;
* a `.gguf` file (LLM only) - dequantised once into the cache;
* anything else (a Hugging Face directory, a hub id) - returned unchanged.

A config keeps the reference as written (`weights:NAME`), so a saved model stays portable: only the
factories see the machine-local cache directory.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mint.errors import CheckpointError, ConfigError
from mint.storage import sha256_file
from mint.weights import ctranslate2_whisper, gguf_llm
from mint.weights.cache import cached_conversion, find_conversion
from mint.weights.registry import (
    CONFIG,
    CTRANSLATE2_WHISPER,
    ENCODER,
    GGUF,
    LLM,
    MODEL,
    TOKENIZER,
    NamedWeights,
    file_path,
    lookup,
    require_installed,
)

PREFIX = "weights:"
# Bump when a converter's output changes, so that conversions cached before are made again.
CONVERTER_VERSIONS = {CTRANSLATE2_WHISPER: 1, GGUF: 1}
# Hex digits of the source record's digest that name a conversion's cache directory.
_KEY_DIGITS = 16


def is_named_reference(name_or_path: str | None) -> bool:
    return bool(name_or_path) and name_or_path.startswith(PREFIX)


def _source(kind: str, digests: dict[str, list[str]]) -> tuple[str, dict]:
    """The cache key and record of a conversion: the format, the converter version and the SHA-256 of the
    input files by role. Named weights and a path to the same files share one conversion."""
    source = {"format": kind, "converter_version": CONVERTER_VERSIONS[kind], "files": digests}
    key = hashlib.sha256(json.dumps(source, sort_keys=True).encode("utf-8")).hexdigest()[:_KEY_DIGITS]
    return f"{kind}-{key}", source


def _named_source(entry: NamedWeights) -> tuple[str, dict]:
    roles = (MODEL, CONFIG, TOKENIZER)
    return _source(entry.format, {role: [file.sha256 for file in entry.files_with(role)] for role in roles})


def verify_files(entry: NamedWeights, where: str | None = None) -> None:
    """Check every file of the installed packages against its pinned SHA-256; `where` (what asked for the
    weights, by default `weights:NAME`) starts an error's message."""
    where = where or f"{PREFIX}{entry.name}"
    for file in entry.files:
        path = file_path(file)
        if not path.is_file():
            raise CheckpointError(
                f"{where}: {path} is missing; reinstall {file.package} with `mint weights fetch {entry.name}`"
            )
        if sha256_file(path) != file.sha256:
            raise CheckpointError(
                f"{where}: {path} does not match its pinned SHA-256 {file.sha256[:16]}...; the package "
                f"{file.package} is corrupt or not the pinned build: reinstall it with "
                f"`mint weights fetch {entry.name}`"
            )


def _convert_named(entry: NamedWeights, output_dir: Path, where: str) -> None:
    verify_files(entry, where)
    models = [file_path(file) for file in entry.files_with(MODEL)]
    if entry.format == CTRANSLATE2_WHISPER:
        (config,) = entry.files_with(CONFIG)
        (tokenizer,) = entry.files_with(TOKENIZER)
        ctranslate2_whisper.convert_whisper(models, file_path(config), file_path(tokenizer), output_dir)
    else:
        gguf_llm.convert_gguf(models[0], output_dir)


def converted_dir(entry: NamedWeights) -> Path | None:
    """Where the entry's weights are ready to load now, without converting or digest checks (for listings)."""
    if entry.format in CONVERTER_VERSIONS:
        return find_conversion(*_named_source(entry))
    model = file_path(entry.files_with(MODEL)[0])
    return model.parent if model.is_file() else None


def prepare_named(entry: NamedWeights, where: str | None = None) -> Path:
    """The loadable directory of installed named weights, converting them on first use; `where` (what asked
    for them, by default `weights:NAME`) starts an error's message."""
    where = where or f"{PREFIX}{entry.name}"
    require_installed(entry, where)
    if entry.format not in CONVERTER_VERSIONS:
        return file_path(entry.files_with(MODEL)[0]).parent
    key, source = _named_source(entry)
    return cached_conversion(key, source, lambda output_dir: _convert_named(entry, output_dir, where))


def _digests(*paths: Path) -> list[str]:
    return [sha256_file(path) for path in paths if path.is_file()]


def _require_role(role: str, expected: str, where: str, what: str, name_or_path: str) -> None:
    if role != expected:
        raise ConfigError(f"{where}={name_or_path!r} is {what}, which only {expected}.name_or_path takes")


def resolve_weights(name_or_path: str, role: str) -> str:
    """The directory or hub id that Hugging Face should load for `name_or_path` (see the module doc);
    `role` is "encoder" or "llm", the config section the reference comes from."""
    where = f"{role}.name_or_path"
    if is_named_reference(name_or_path):
        entry = lookup(name_or_path.removeprefix(PREFIX), where)
        if entry.role != role:
            raise ConfigError(
                f"{where}={name_or_path!r} names {entry.role} weights ({entry.description}); expected "
                f"{role} weights"
            )
        return str(prepare_named(entry, f"{where}={name_or_path!r}"))
    path = Path(name_or_path).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        _require_role(role, LLM, where, "a GGUF file", name_or_path)
        key, source = _source(GGUF, {MODEL: _digests(path), CONFIG: [], TOKENIZER: []})
        return str(cached_conversion(key, source, lambda output_dir: gguf_llm.convert_gguf(path, output_dir)))
    if ctranslate2_whisper.is_ctranslate2_dir(path):
        _require_role(role, ENCODER, where, "a CTranslate2 directory", name_or_path)
        digests = {
            MODEL: _digests(path / ctranslate2_whisper.MODEL_FILE),
            CONFIG: _digests(path / ctranslate2_whisper.CONFIG_FILE),
            TOKENIZER: _digests(path / ctranslate2_whisper.TOKENIZER_FILE),
        }
        key, source = _source(CTRANSLATE2_WHISPER, digests)
        return str(
            cached_conversion(
                key, source, lambda output_dir: ctranslate2_whisper.convert_ctranslate2_dir(path, output_dir)
            )
        )
    return name_or_path
