"""`build_encoder`: the one place that loads encoder checkpoints (a local directory, a hub id, or what
`mint.weights.resolve_weights` turns into a directory: `weights:NAME`, a CTranslate2 Whisper directory)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mint.encoders import ast, clap, wav2vec, whisper
from mint.encoders.base import AudioEncoder
from mint.encoders.config import EncoderConfig
from mint.encoders.fused import FusedEncoder
from mint.encoders.mel import MelEncoder
from mint.errors import CheckpointError, ConfigError
from mint.hardware import torch_dtype
from mint.weights import resolve_weights

logger = logging.getLogger(__name__)

# Hugging Face `model_type` values each kind accepts.
_MODEL_TYPES = {
    "data2vec": ("data2vec-audio",),
    "wav2vec2": ("wav2vec2",),
    "hubert": ("hubert",),
    "whisper": ("whisper",),
    "ast": ("audio-spectrogram-transformer",),
    "clap": ("clap", "clap_audio_model"),
}


def _remote_code(config: EncoderConfig) -> dict:
    # Always explicit: left unset, transformers asks on the terminal whether to run a checkpoint's
    # custom code, and a "y" on stdin would run it although the config says no.
    return {"trust_remote_code": config.trust_remote_code}


def _load_model_config(config: EncoderConfig) -> Any:
    from transformers import AutoConfig

    try:
        model_config = AutoConfig.from_pretrained(config.name_or_path, **_remote_code(config))
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"encoder.name_or_path={config.name_or_path!r}: cannot load a model config: {error}"
        ) from error
    expected = _MODEL_TYPES[config.kind]
    if model_config.model_type not in expected:
        raise ConfigError(
            f"encoder.kind={config.kind!r} expects a checkpoint of model_type {expected}, but "
            f"{config.name_or_path!r} holds {model_config.model_type!r}"
        )
    return model_config


def _load_model(model_class: Any, model_config: Any, config: EncoderConfig, used_prefix: str = "") -> Any:
    """Load weights; fail if any weight under `used_prefix` (the part we run) was not in the checkpoint."""
    try:
        model, info = model_class.from_pretrained(
            config.name_or_path,
            config=model_config,
            dtype=torch_dtype(config.dtype, "encoder.dtype"),
            output_loading_info=True,
            **_remote_code(config),
        )
    except (OSError, ValueError) as error:
        raise CheckpointError(
            f"encoder.name_or_path={config.name_or_path!r}: cannot load {model_class.__name__} weights: {error}"
        ) from error
    missing = sorted(key for key in info["missing_keys"] if key.startswith(used_prefix))
    if missing:
        raise CheckpointError(
            f"encoder.name_or_path={config.name_or_path!r}: the checkpoint lacks {len(missing)} weights of "
            f"{model_class.__name__} (e.g. {missing[:3]}); they would be left random"
        )
    return model


def _load_feature_extractor(config: EncoderConfig, expected: str, fallback: Callable[[], Any]) -> Any:
    from transformers import AutoFeatureExtractor

    try:
        extractor = AutoFeatureExtractor.from_pretrained(config.name_or_path, **_remote_code(config))
    except OSError:
        extractor = fallback()
        logger.warning(
            "%s has no feature extractor (preprocessor_config.json); using a default %s built from the model "
            "config - check that it matches the front end the checkpoint was trained with",
            config.name_or_path,
            type(extractor).__name__,
        )
        return extractor
    if type(extractor).__name__ != expected:
        raise ConfigError(
            f"encoder.name_or_path={config.name_or_path!r}: expected a {expected}, the checkpoint has a "
            f"{type(extractor).__name__}"
        )
    return extractor


def _weights_dir(config: EncoderConfig) -> Path | None:
    path = Path(str(config.name_or_path)).expanduser()
    return path if path.is_dir() else None


def _build_wav2vec(config: EncoderConfig) -> AudioEncoder:
    from transformers import Data2VecAudioModel, HubertModel, Wav2Vec2Model

    model_class = {"data2vec": Data2VecAudioModel, "wav2vec2": Wav2Vec2Model, "hubert": HubertModel}[
        config.kind
    ]
    model_config = _load_model_config(config)
    model = _load_model(model_class, model_config, config)
    extractor = _load_feature_extractor(
        config, "Wav2Vec2FeatureExtractor", lambda: wav2vec.default_feature_extractor(model_config)
    )
    return wav2vec.Wav2VecEncoder(
        config.kind, model, extractor, str(config.name_or_path), config.dtype, _weights_dir(config)
    )


def _build_whisper(config: EncoderConfig) -> AudioEncoder:
    from transformers import WhisperModel

    model_config = _load_model_config(config)
    # The full model loads checkpoints saved from either WhisperModel or WhisperForConditionalGeneration.
    encoder = _load_model(WhisperModel, model_config, config, used_prefix="encoder.").get_encoder()
    extractor = _load_feature_extractor(
        config, "WhisperFeatureExtractor", lambda: whisper.default_feature_extractor(model_config)
    )
    return whisper.WhisperEncoderAdapter(
        encoder,
        extractor,
        str(config.name_or_path),
        config.dtype,
        _weights_dir(config),
        config.window_seconds,
    )


def _build_ast(config: EncoderConfig) -> AudioEncoder:
    from transformers import ASTModel

    model_config = _load_model_config(config)
    model = _load_model(ASTModel, model_config, config)
    extractor = _load_feature_extractor(
        config, "ASTFeatureExtractor", lambda: ast.default_feature_extractor(model_config)
    )
    return ast.ASTEncoder(model, extractor, str(config.name_or_path), config.dtype, _weights_dir(config))


def _build_clap(config: EncoderConfig) -> AudioEncoder:
    from transformers import ClapAudioModel, ClapModel

    model_config = _load_model_config(config)
    if model_config.model_type == "clap":
        # A full CLAP checkpoint stores the tower under `audio_model.`, which ClapAudioModel would not find.
        tower = _load_model(ClapModel, model_config, config, used_prefix="audio_model.").audio_model
    else:
        tower = _load_model(ClapAudioModel, model_config, config)
    extractor = _load_feature_extractor(
        config, "ClapFeatureExtractor", lambda: clap.default_feature_extractor(tower.config)
    )
    return clap.ClapAudioEncoder(
        tower, extractor, str(config.name_or_path), config.dtype, _weights_dir(config)
    )


_BUILDERS: dict[str, Callable[[EncoderConfig], AudioEncoder]] = {
    "data2vec": _build_wav2vec,
    "wav2vec2": _build_wav2vec,
    "hubert": _build_wav2vec,
    "whisper": _build_whisper,
    "ast": _build_ast,
    "clap": _build_clap,
}


def build_model_encoder(encoder: EncoderConfig, encoders: Sequence[EncoderConfig] = ()) -> AudioEncoder:
    """The model's audio encoder: `encoder` alone, or fused with `encoders` (`mint.encoders.fused`)."""
    if not encoders:
        return build_encoder(encoder)
    return FusedEncoder([build_encoder(encoder), *(build_encoder(part) for part in encoders)])


def build_encoder(config: EncoderConfig) -> AudioEncoder:
    """Validate `config` and build the frozen encoder it names, loading weights for the pretrained kinds."""
    config.validate()
    if config.kind == "mel":
        return MelEncoder(
            sample_rate=config.sample_rate,
            n_mels=config.n_mels,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
            frames_per_token=config.frames_per_token,
            hidden_size=config.hidden_size,
            seed=config.seed,
            dtype=config.dtype,
        )
    # The caller's config keeps the reference as written (a saved model stays portable); only the
    # loading sees the directory it resolves to.
    source = resolve_weights(str(config.name_or_path), "encoder")
    return _BUILDERS[config.kind](dataclasses.replace(config, name_or_path=source))
