"""Frozen audio encoders behind one interface: the built-in mel front end and Hugging Face checkpoints."""

from mint.encoders.base import AudioEncoder, EncoderOutput
from mint.encoders.config import ENCODER_KINDS, EncoderConfig
from mint.encoders.factory import build_encoder, build_model_encoder
from mint.encoders.fused import FusedEncoder
from mint.encoders.mel import MelEncoder

__all__ = [
    "ENCODER_KINDS",
    "AudioEncoder",
    "EncoderConfig",
    "EncoderOutput",
    "FusedEncoder",
    "MelEncoder",
    "build_encoder",
    "build_model_encoder",
]
