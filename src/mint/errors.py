"""Exceptions raised for bad input. Each message names the file or field and what was expected."""

from __future__ import annotations


class MintError(Exception):
    """Base class of every error mint raises on purpose."""


class ConfigError(MintError, ValueError):
    """A config key is unknown, missing or of the wrong type."""


class AudioError(MintError, ValueError):
    """An audio file or array cannot be used (unreadable, empty, not finite, ...)."""


class UnsupportedAudioFormatError(AudioError):
    """The data is not in any audio container mint decodes (sniffed from its first bytes)."""


class DataError(MintError, ValueError):
    """A manifest or dataset file is malformed."""


class CheckpointError(MintError, ValueError):
    """A checkpoint or saved model is missing, incomplete or fails its integrity check."""
