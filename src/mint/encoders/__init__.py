"""Frozen audio encoders behind one interface: the built-in mel front end and Hugging Face checkpoints."""

from mint.encoders.base import AudioEncoder, EncoderOutput
from mint.encoders.config import ENCODER_KINDS, EncoderConfig
from mint.encoders.factory import build_encoder
from mint.encoders.mel import MelEncoder

__all__ = ["ENCODER_KINDS", "AudioEncoder", "EncoderConfig", "EncoderOutput", "MelEncoder", "build_encoder"]
