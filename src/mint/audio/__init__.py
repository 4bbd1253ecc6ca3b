"""Audio front end: decode files (format sniffed from content), mix to mono, resample, crop and pad."""

from mint.audio.decode import (
    SUPPORTED_FORMATS,
    AudioInfo,
    AudioSource,
    DecodedAudio,
    audio_info,
    describe_source,
    read_audio,
)
from mint.audio.frontend import (
    MONO_MODES,
    RESAMPLE_QUALITIES,
    AudioFrontend,
    FrontendConfig,
    crop,
    pad_batch,
    resample,
    to_mono,
    validate_samples,
)

__all__ = [
    "MONO_MODES",
    "RESAMPLE_QUALITIES",
    "SUPPORTED_FORMATS",
    "AudioFrontend",
    "AudioInfo",
    "AudioSource",
    "DecodedAudio",
    "FrontendConfig",
    "audio_info",
    "crop",
    "describe_source",
    "pad_batch",
    "read_audio",
    "resample",
    "to_mono",
    "validate_samples",
]
