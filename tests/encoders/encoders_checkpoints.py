"""Tiny randomly initialised Hugging Face models and extractors for the encoder tests (hidden 32, 2 layers)."""

from __future__ import annotations

from typing import Any

# The real wav2vec 2.0 conv stack (25 ms receptive field, 20 ms hop) with 8 channels instead of 512.
CONV_KERNEL = (10, 3, 3, 3, 3, 2, 2)
CONV_STRIDE = (5, 2, 2, 2, 2, 2, 2)
_WAV2VEC_COMMON = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": (8,) * 7,
    "conv_kernel": CONV_KERNEL,
    "conv_stride": CONV_STRIDE,
}
CLAP_AUDIO = {
    "spec_size": 64,
    "num_mel_bins": 16,
    "patch_size": 4,
    "patch_stride": (4, 4),
    "window_size": 4,
    "depths": [1, 1],
    "num_attention_heads": [2, 2],
    "patch_embeds_hidden_size": 16,
    "hidden_size": 32,
    "projection_dim": 16,
}
# Two seconds at 48 kHz keeps the CLAP window's 201 mel frames under the tower's 256-frame width.
CLAP_WINDOW_SECONDS = 2
AST_MAX_FRAMES = 200


def _data2vec(variant: str) -> tuple[Any, Any]:
    from transformers import Data2VecAudioConfig, Data2VecAudioModel, Wav2Vec2FeatureExtractor

    config = Data2VecAudioConfig(**_WAV2VEC_COMMON, num_conv_pos_embeddings=4, conv_pos_kernel_size=5)
    return Data2VecAudioModel(config), Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)


def _wav2vec2(variant: str) -> tuple[Any, Any]:
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    # Layer-norm conv stack (the "lv60" recipe): batched with an attention mask.
    config = Wav2Vec2Config(
        **_WAV2VEC_COMMON,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
    )
    return Wav2Vec2Model(config), Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True)


def _hubert(variant: str) -> tuple[Any, Any]:
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    # Group-norm conv stack (the "base" recipe): trained without an attention mask, no normalisation.
    config = HubertConfig(**_WAV2VEC_COMMON, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    return HubertModel(config), Wav2Vec2FeatureExtractor(do_normalize=False, return_attention_mask=False)


def _whisper(variant: str) -> tuple[Any, Any]:
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    config = WhisperConfig(
        d_model=32,
        encoder_layers=2,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_mel_bins=80,
        vocab_size=64,
        max_target_positions=16,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    # Saved as the ASR model (what openai/whisper-* checkpoints are); the adapter keeps the encoder.
    return WhisperForConditionalGeneration(config), WhisperFeatureExtractor(feature_size=80)


def _ast(variant: str) -> tuple[Any, Any]:
    from transformers import ASTConfig, ASTFeatureExtractor, ASTModel

    config = ASTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_mel_bins=32,
        max_length=AST_MAX_FRAMES,
    )
    return ASTModel(config), ASTFeatureExtractor(num_mel_bins=32, max_length=AST_MAX_FRAMES)


def _clap(variant: str) -> tuple[Any, Any]:
    from transformers import ClapAudioConfig, ClapAudioModel, ClapConfig, ClapFeatureExtractor, ClapModel

    fused = variant == "fused"
    extractor = ClapFeatureExtractor(
        feature_size=CLAP_AUDIO["num_mel_bins"],
        max_length_s=CLAP_WINDOW_SECONDS,
        truncation="fusion" if fused else "rand_trunc",
        padding="pad" if variant == "pad" else "repeatpad",
    )
    if fused:
        return ClapAudioModel(
            ClapAudioConfig(**CLAP_AUDIO, enable_fusion=True, fusion_type="aff_2d")
        ), extractor
    # A full two-tower checkpoint, as the LAION releases are.
    text = {"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = ClapConfig(
        audio_config=CLAP_AUDIO,
        text_config={**text, "intermediate_size": 32, "projection_dim": 16},
        projection_dim=16,
    )
    return ClapModel(config), extractor


BUILDERS = {
    "data2vec": _data2vec,
    "wav2vec2": _wav2vec2,
    "hubert": _hubert,
    "whisper": _whisper,
    "ast": _ast,
    "clap": _clap,
}
HF_KINDS = tuple(BUILDERS)
