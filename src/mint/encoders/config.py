"""Which frozen audio encoder to build, and the settings of the weight-free mel front end."""

from __future__ import annotations

from dataclasses import dataclass

from mint.errors import ConfigError
from mint.hardware import check_dtype_name

MEL_KIND = "mel"
WAV2VEC_KINDS = ("data2vec", "wav2vec2", "hubert")
PRETRAINED_KINDS = (*WAV2VEC_KINDS, "whisper", "ast", "clap")
ENCODER_KINDS = (MEL_KIND, *PRETRAINED_KINDS)


@dataclass(frozen=True)
class EncoderConfig:
    """`kind` picks the backend. The HF kinds load `name_or_path` (a local directory, a hub id, named weights
    `weights:NAME` or, for Whisper, a CTranslate2 directory; see `mint.weights`) and take their sample rate
    and front end from the checkpoint's feature extractor; the mel settings below apply only to
    `kind="mel"`. `window_seconds` (Whisper only) pads every clip to that window instead of Whisper's
    own 30 s and cuts the encoder's positional table to match: shorter clips cost a fraction of a
    30 s pass (None keeps Whisper's window)."""

    kind: str = MEL_KIND
    name_or_path: str | None = None
    dtype: str = "float32"
    trust_remote_code: bool = False
    window_seconds: float | None = None
    sample_rate: int = 16000
    n_mels: int = 64
    n_fft: int = 400
    hop_length: int = 160
    frames_per_token: int = 4
    hidden_size: int = 256
    seed: int = 0

    def validate(self, where: str = "encoder") -> None:
        """Raise `ConfigError` naming the first bad field (as `<where>.<field>`)."""
        if self.kind not in ENCODER_KINDS:
            raise ConfigError(
                f"{where}.kind: unknown encoder kind {self.kind!r}; expected one of {ENCODER_KINDS}"
            )
        check_dtype_name(self.dtype, f"{where}.dtype")
        if self.kind in PRETRAINED_KINDS and not self.name_or_path:
            raise ConfigError(
                f"{where}.name_or_path: required for encoder kind {self.kind!r} "
                "(a local directory holding the checkpoint, or a hub id)"
            )
        if self.window_seconds is not None:
            if self.kind != "whisper":
                raise ConfigError(
                    f"{where}.window_seconds: only the whisper encoder has a window to shorten, not {self.kind!r}"
                )
            if isinstance(self.window_seconds, bool) or not self.window_seconds > 0:
                raise ConfigError(
                    f"{where}.window_seconds: expected a positive number of seconds or null, got "
                    f"{self.window_seconds!r}"
                )
        if self.kind == MEL_KIND:
            validate_mel_settings(
                sample_rate=self.sample_rate,
                n_mels=self.n_mels,
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                frames_per_token=self.frames_per_token,
                hidden_size=self.hidden_size,
                where=where,
            )


def validate_mel_settings(where: str = "encoder", **settings: int) -> None:
    """Every mel setting is a positive int; an FFT needs at least two points."""
    for name, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{where}.{name}: expected a positive integer, got {value!r}")
    if settings.get("n_fft", 2) < 2:
        raise ConfigError(f"{where}.n_fft: expected at least 2, got {settings['n_fft']}")
