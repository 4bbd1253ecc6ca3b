"""CTranslate2 / faster-whisper Whisper directory -> Hugging Face `WhisperModel` directory.

A CTranslate2 model is one binary file (`model.bin`: a version, the spec name, then named tensors and
aliases) beside `config.json` (token id lists) and `tokenizer.json` (the Hugging Face tokenizer). Its
Whisper tensors are those of Hugging Face's `WhisperModel` under other names, except that the
self-attention query, key and value projections are stored as one fused matrix (and the cross-attention
key and value as another): they are split here. The key projections of Whisper have no bias, so the
key part of a fused bias must be zero. Tensors keep their stored precision (fp16 for the published
conversions), so the converted model computes with exactly the weights CTranslate2 uses.

The output directory holds `config.json`, `model.safetensors`, the `WhisperFeatureExtractor` settings
and the tokenizer files, so `build_encoder(kind="whisper", name_or_path=<dir>)` loads it like any
Hugging Face Whisper checkpoint.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mint.errors import CheckpointError

MODEL_FILE = "model.bin"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"

_SPEC_NAME = "WhisperSpec"
# Binary layouts this reader understands (CTranslate2 writes version 6 since its 3.x releases).
_BINARY_VERSIONS = (5, 6)
# Type ids of the binary format, in CTranslate2's order.
_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
# The decoder flags a Whisper spec carries, with the values that Hugging Face's Whisper implements:
# GELU activation (CTranslate2's activation id 3), pre-norm layers, no ALiBi, unscaled embeddings.
_EXPECTED_FLAGS = {
    "activation": 3,
    "pre_norm": 1,
    "alibi": 0,
    "scale_embeddings": 0,
    "start_from_zero_embedding": 0,
}
# ALiBi details that later CTranslate2 versions also write; they only act when ALiBi is on.
_OPTIONAL_FLAGS = {"alibi_use_positive_positions": 0, "scale_alibi": 0}
# Decoder entries that only drive CTranslate2's word-timestamp alignment, which Hugging Face keeps elsewhere.
_ALIGNMENT_ENTRIES = ("alignment_heads", "alignment_layer")

_START_TOKEN = "<|startoftranscript|>"
_END_TOKEN = "<|endoftext|>"


def is_ctranslate2_dir(path: Path) -> bool:
    """A directory holding a CTranslate2 `model.bin` whose `config.json` (if any) is not a Hugging Face one."""
    if not (path.is_dir() and (path / MODEL_FILE).is_file()):
        return False
    config = path / CONFIG_FILE
    if not config.is_file():
        return True
    try:
        return "model_type" not in json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


class _Reader:
    """Sequential little-endian reads over the model file's bytes, naming the file in every error."""

    def __init__(self, data: bytes, name: str) -> None:
        self.view = memoryview(data)
        self.offset = 0
        self.name = name

    def take(self, size: int) -> memoryview:
        if self.offset + size > len(self.view):
            raise CheckpointError(
                f"{self.name}: ends after {len(self.view)} bytes, inside a record; truncated?"
            )
        chunk = self.view[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def unpack(self, layout: str) -> tuple:
        return struct.unpack("<" + layout, self.take(struct.calcsize("<" + layout)))

    def string(self) -> str:
        (size,) = self.unpack("H")
        # Stored with its terminating NUL, which the size counts.
        return bytes(self.take(size)[:-1]).decode("utf-8")


def read_model_bin(parts: Sequence[Path]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The named tensors and aliases of a CTranslate2 `model.bin`, given as one file or as parts to join."""
    name = " + ".join(str(part) for part in parts)
    reader = _Reader(b"".join(Path(part).read_bytes() for part in parts), name)
    (version,) = reader.unpack("I")
    if version not in _BINARY_VERSIONS:
        raise CheckpointError(
            f"{name}: CTranslate2 binary version {version}; this reader understands {_BINARY_VERSIONS}"
        )
    spec = reader.string()
    if spec != _SPEC_NAME:
        raise CheckpointError(f"{name}: holds a CTranslate2 {spec!r} model; only {_SPEC_NAME} is converted")
    reader.unpack("I")  # the spec's revision: the tensor names checked below are what matters
    (count,) = reader.unpack("I")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(count):
        key = reader.string()
        (rank,) = reader.unpack("B")
        shape = reader.unpack(f"{rank}I")
        (type_id,) = reader.unpack("B")
        (size,) = reader.unpack("I")
        if type_id >= len(_DTYPES) or _DTYPES[type_id] == "bfloat16":
            stored = _DTYPES[type_id] if type_id < len(_DTYPES) else f"of type id {type_id}"
            raise CheckpointError(
                f"{name}: tensor {key} is {stored}; only float32, float16 and integer tensors are read"
            )
        array = np.frombuffer(reader.take(size), dtype=_DTYPES[type_id])
        if array.size != int(np.prod(shape)):
            raise CheckpointError(f"{name}: tensor {key} holds {array.size} values for shape {shape}")
        tensors[key] = array.reshape(shape)
    (alias_count,) = reader.unpack("I")
    aliases = {reader.string(): reader.string() for _ in range(alias_count)}
    if reader.offset != len(reader.view):
        raise CheckpointError(f"{name}: {len(reader.view) - reader.offset} bytes left after the last record")
    return tensors, aliases


class _Tensors:
    """Takes tensors by name, so that what is left at the end (a key nobody mapped) can be refused."""

    def __init__(self, tensors: dict[str, np.ndarray], name: str) -> None:
        self.left = dict(tensors)
        self.name = name

    def take(self, key: str) -> np.ndarray:
        if key not in self.left:
            raise CheckpointError(f"{self.name}: no tensor {key}, which a Whisper model needs")
        return self.left.pop(key)

    def scalar(self, key: str) -> int:
        return int(self.take(key).reshape(()))


def _linear(out: dict[str, np.ndarray], target: str, source: _Tensors, key: str) -> None:
    out[f"{target}.weight"] = source.take(f"{key}/weight")
    out[f"{target}.bias"] = source.take(f"{key}/bias")


def _layer_norm(out: dict[str, np.ndarray], target: str, source: _Tensors, key: str) -> None:
    out[f"{target}.weight"] = source.take(f"{key}/gamma")
    out[f"{target}.bias"] = source.take(f"{key}/beta")


def _split_fused(out: dict[str, np.ndarray], targets: Sequence[str], source: _Tensors, key: str) -> None:
    """Split a fused projection (rows stacked in `targets` order); the key rows carry no bias in Whisper."""
    weights = np.split(source.take(f"{key}/weight"), len(targets))
    biases = np.split(source.take(f"{key}/bias"), len(targets))
    for target, weight, bias in zip(targets, weights, biases, strict=True):
        out[f"{target}.weight"] = weight
        if target.endswith("k_proj"):
            if np.any(bias):
                raise CheckpointError(
                    f"{source.name}: {key}/bias is non-zero on the key rows; Whisper's key projection has no bias"
                )
        else:
            out[f"{target}.bias"] = bias


def _layer_count(tensors: dict[str, np.ndarray], stack: str) -> int:
    count = 0
    while any(key.startswith(f"{stack}/layer_{count}/") for key in tensors):
        count += 1
    return count


def _map_encoder(out: dict[str, np.ndarray], source: _Tensors, layers: int) -> None:
    for conv in ("conv1", "conv2"):
        _linear(out, f"encoder.{conv}", source, f"encoder/{conv}")
    out["encoder.embed_positions.weight"] = source.take("encoder/position_encodings/encodings")
    for i in range(layers):
        prefix, key = f"encoder.layers.{i}", f"encoder/layer_{i}"
        attention = f"{prefix}.self_attn"
        _split_fused(
            out,
            [f"{attention}.q_proj", f"{attention}.k_proj", f"{attention}.v_proj"],
            source,
            f"{key}/self_attention/linear_0",
        )
        _linear(out, f"{attention}.out_proj", source, f"{key}/self_attention/linear_1")
        _layer_norm(out, f"{prefix}.self_attn_layer_norm", source, f"{key}/self_attention/layer_norm")
        _linear(out, f"{prefix}.fc1", source, f"{key}/ffn/linear_0")
        _linear(out, f"{prefix}.fc2", source, f"{key}/ffn/linear_1")
        _layer_norm(out, f"{prefix}.final_layer_norm", source, f"{key}/ffn/layer_norm")
    _layer_norm(out, "encoder.layer_norm", source, "encoder/layer_norm")


def _map_decoder(out: dict[str, np.ndarray], source: _Tensors, layers: int) -> None:
    out["decoder.embed_tokens.weight"] = source.take("decoder/embeddings/weight")
    out["decoder.embed_positions.weight"] = source.take("decoder/position_encodings/encodings")
    for i in range(layers):
        prefix, key = f"decoder.layers.{i}", f"decoder/layer_{i}"
        own, cross = f"{prefix}.self_attn", f"{prefix}.encoder_attn"
        _split_fused(
            out, [f"{own}.q_proj", f"{own}.k_proj", f"{own}.v_proj"], source, f"{key}/self_attention/linear_0"
        )
        _linear(out, f"{own}.out_proj", source, f"{key}/self_attention/linear_1")
        _layer_norm(out, f"{prefix}.self_attn_layer_norm", source, f"{key}/self_attention/layer_norm")
        _linear(out, f"{cross}.q_proj", source, f"{key}/attention/linear_0")
        _split_fused(out, [f"{cross}.k_proj", f"{cross}.v_proj"], source, f"{key}/attention/linear_1")
        _linear(out, f"{cross}.out_proj", source, f"{key}/attention/linear_2")
        _layer_norm(out, f"{prefix}.encoder_attn_layer_norm", source, f"{key}/attention/layer_norm")
        _linear(out, f"{prefix}.fc1", source, f"{key}/ffn/linear_0")
        _linear(out, f"{prefix}.fc2", source, f"{key}/ffn/linear_1")
        _layer_norm(out, f"{prefix}.final_layer_norm", source, f"{key}/ffn/layer_norm")
    _layer_norm(out, "decoder.layer_norm", source, "decoder/layer_norm")


def _check_decoder_flags(source: _Tensors) -> None:
    present = {flag: value for flag, value in _OPTIONAL_FLAGS.items() if f"decoder/{flag}" in source.left}
    for flag, expected in {**_EXPECTED_FLAGS, **present}.items():
        value = source.scalar(f"decoder/{flag}")
        if value != expected:
            raise CheckpointError(
                f"{source.name}: decoder/{flag} is {value}; the Hugging Face Whisper model needs {expected}"
            )
    for entry in _ALIGNMENT_ENTRIES:
        source.left.pop(f"decoder/{entry}", None)


def whisper_state_dict(
    tensors: dict[str, np.ndarray], aliases: dict[str, str], name: str
) -> tuple[dict[str, torch.Tensor], dict]:
    """Hugging Face `WhisperModel` tensors and the model dimensions, from CTranslate2's Whisper tensors.

    Every CTranslate2 tensor must be used: one left over would be a part of the model that the
    converted one silently lacks.
    """
    projection = aliases.get("decoder/projection/weight")
    if "decoder/projection/weight" in tensors or projection not in (None, "decoder/embeddings/weight"):
        raise CheckpointError(
            f"{name}: the output projection is not tied to the token embeddings, as Whisper's always is"
        )
    encoder_layers, decoder_layers = _layer_count(tensors, "encoder"), _layer_count(tensors, "decoder")
    source = _Tensors(tensors, name)
    dims = {
        "encoder_attention_heads": source.scalar("encoder/num_heads"),
        "decoder_attention_heads": source.scalar("decoder/num_heads"),
        "encoder_layers": encoder_layers,
        "decoder_layers": decoder_layers,
    }
    _check_decoder_flags(source)
    out: dict[str, np.ndarray] = {}
    _map_encoder(out, source, encoder_layers)
    _map_decoder(out, source, decoder_layers)
    quantized = sorted(key for key, value in out.items() if value.dtype.kind != "f")
    if quantized:
        raise CheckpointError(
            f"{name}: quantized weights (e.g. {quantized[0]}); convert from a float16 or float32 CTranslate2 model"
        )
    if source.left:
        raise CheckpointError(
            f"{name}: {len(source.left)} tensors have no place in a Whisper model (e.g. {sorted(source.left)[:3]})"
        )
    conv1 = out["encoder.conv1.weight"]
    embeddings = out["decoder.embed_tokens.weight"]
    dims.update(
        d_model=int(conv1.shape[0]),
        num_mel_bins=int(conv1.shape[1]),
        encoder_ffn_dim=int(out["encoder.layers.0.fc1.weight"].shape[0]),
        decoder_ffn_dim=int(out["decoder.layers.0.fc1.weight"].shape[0]),
        vocab_size=int(embeddings.shape[0]),
        max_source_positions=int(out["encoder.embed_positions.weight"].shape[0]),
        max_target_positions=int(out["decoder.embed_positions.weight"].shape[0]),
    )
    # np.frombuffer views are read-only; torch wants memory it may own.
    state = {key: torch.from_numpy(np.array(value)) for key, value in out.items()}
    return state, dims


def _token_id(tokenizer: dict, token: str, path: Path) -> int:
    for entry in tokenizer.get("added_tokens", []):
        if entry.get("content") == token:
            return int(entry["id"])
    vocab = tokenizer.get("model", {}).get("vocab", {})
    if token in vocab:
        return int(vocab[token])
    raise CheckpointError(f"{path}: the tokenizer has no {token} token, which Whisper's decoder needs")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: cannot read it as JSON: {error}") from error


def convert_whisper(
    model_parts: Sequence[Path], config_file: Path, tokenizer_file: Path, output_dir: Path
) -> None:
    """Write the Hugging Face Whisper directory for a CTranslate2 model (its `model.bin` in one or more
    parts, joined in order) into `output_dir`, which must exist."""
    from safetensors.torch import save_file
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperTokenizerFast

    tensors, aliases = read_model_bin(model_parts)
    name = " + ".join(str(part) for part in model_parts)
    state, dims = whisper_state_dict(tensors, aliases, name)
    # Older conversions carry no config.json; it only lists tokens to suppress while generating.
    options = _read_json(config_file) if config_file.is_file() else {}
    tokenizer = _read_json(tokenizer_file)
    end = _token_id(tokenizer, _END_TOKEN, tokenizer_file)
    config = WhisperConfig(
        **dims,
        bos_token_id=end,
        eos_token_id=end,
        pad_token_id=end,
        decoder_start_token_id=_token_id(tokenizer, _START_TOKEN, tokenizer_file),
        suppress_tokens=list(options.get("suppress_ids", [])),
        begin_suppress_tokens=list(options.get("suppress_ids_begin", [])),
        tie_word_embeddings=True,
    )
    config.dtype = str(next(iter(state.values())).dtype).removeprefix("torch.")
    config.save_pretrained(output_dir)
    save_file(state, str(output_dir / "model.safetensors"), metadata={"format": "pt"})
    WhisperFeatureExtractor(feature_size=dims["num_mel_bins"]).save_pretrained(output_dir)
    WhisperTokenizerFast(
        tokenizer_file=str(tokenizer_file), unk_token=_END_TOKEN, bos_token=_END_TOKEN, eos_token=_END_TOKEN
    ).save_pretrained(output_dir)


def convert_ctranslate2_dir(source: Path, output_dir: Path) -> None:
    """`convert_whisper` for a CTranslate2 directory (`model.bin`, `config.json`, `tokenizer.json`)."""
    convert_whisper([source / MODEL_FILE], source / CONFIG_FILE, source / TOKENIZER_FILE, output_dir)
