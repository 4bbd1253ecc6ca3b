"""Decode WAV, RF64, FLAC, OGG and MP3 with soundfile, reading only the frames that are asked for.

The container is recognised from the first bytes, never from the file name, so an MP3 saved as
``clip.wav`` decodes. Every failure (missing file, empty file, text, truncated or corrupt data,
zero samples, NaN/inf samples) is raised as :class:`mint.errors.AudioError` naming the file.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from mint.errors import AudioError, UnsupportedAudioFormatError

AudioSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO

SUPPORTED_FORMATS = ("WAV", "RF64", "FLAC", "OGG", "MP3")

_HEAD_BYTES = 16
# Decoding happens in blocks of about this many samples so that a header claiming billions of
# frames cannot make us allocate for them before the data is known to exist.
_BLOCK_SAMPLES = 1 << 16
# Errors soundfile/libsndfile raise for data they cannot parse; all become AudioError.
_DECODE_ERRORS = (
    sf.SoundFileError,
    RuntimeError,
    ValueError,
    TypeError,
    OverflowError,
    MemoryError,
    EOFError,
)


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says: length in frames, rate, channels and container."""

    frames: int
    sample_rate: int
    channels: int
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class DecodedAudio:
    """Decoded samples, ``float32`` of shape ``[frames, channels]``, and their sample rate."""

    samples: np.ndarray
    sample_rate: int


# Containers whose seeking in libsndfile 1.2 is not sample-exact: MPEG seeks land on the wrong frame,
# and a Vorbis seek from a freshly opened file can return wrong samples up to the end of the Ogg
# page it lands in (libsndfile issue #885). These are decoded forward from the start instead.
_SEEK_UNRELIABLE = frozenset({"OGG", "MP3"})


class _ForwardOnlySoundFile(sf.SoundFile):
    """A SoundFile that never seeks.

    soundfile seeks after every read to resync its position; for the containers in
    ``_SEEK_UNRELIABLE`` that seek can corrupt the next read (an MP3 read in blocks turns to
    silence after a few blocks). Declaring the file non-seekable stops those seeks.
    """

    def seekable(self) -> bool:
        return False


def _mpeg_frame_sync(head: bytes) -> bool:
    """True when ``head`` starts with a plausible MPEG audio frame header (not just the sync bits)."""
    if len(head) < 3 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate_index = head[2] >> 4
    rate_index = (head[2] >> 2) & 0b11
    return version != 0b01 and layer != 0b00 and bitrate_index != 0b1111 and rate_index != 0b11


def _id3_tag_length(head: bytes) -> int:
    """Bytes taken by an ID3v2 tag at the start of ``head`` (header, body, optional footer)."""
    body = 0
    for byte in head[6:10]:
        body = (body << 7) | (byte & 0x7F)  # "synchsafe" integer: 7 bits per byte
    footer = 10 if head[5] & 0x10 else 0
    return 10 + body + footer


def _sniff(head: bytes) -> str | None:
    """The container named by the magic bytes at the start of ``head``, or None if unknown."""
    if head[8:12] == b"WAVE" and head[:4] in (b"RIFF", b"RF64"):
        return "WAV" if head[:4] == b"RIFF" else "RF64"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "OGG"
    if _mpeg_frame_sync(head):
        return "MP3"
    return None


def _detect_format(stream: BinaryIO, name: str) -> str:
    head = stream.read(_HEAD_BYTES)
    if isinstance(head, str):
        raise AudioError(f"{name}: file object is open in text mode; expected a binary stream")
    if len(head) == 0:
        raise AudioError(f"{name}: empty file (0 bytes); expected audio data")
    if head[:3] == b"ID3" and len(head) >= 10:
        # An ID3 tag prefixes MP3 streams and, rarely, FLAC; the container follows the tag.
        stream.seek(_id3_tag_length(head))
        return "FLAC" if stream.read(4) == b"fLaC" else "MP3"
    fmt = _sniff(head)
    if fmt is None:
        raise UnsupportedAudioFormatError(
            f"{name}: not a recognised audio file (expected {', '.join(SUPPORTED_FORMATS)}); "
            f"it starts with {head[:12]!r}"
        )
    return fmt


def describe_source(source: AudioSource) -> str:
    """The name error messages use for ``source``: its path, "<bytes>", or the file object's name."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        return str(Path(source))
    return str(getattr(source, "name", "<file object>"))


def _source_stream(source: AudioSource, stack: ExitStack) -> tuple[BinaryIO, str]:
    """A seekable binary stream over ``source`` and the name used in error messages."""
    name = describe_source(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source)), name
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise AudioError(f"{path}: file not found")
        if path.is_dir():
            raise AudioError(f"{path}: is a directory; expected an audio file")
        try:
            return stack.enter_context(path.open("rb")), name
        except OSError as exc:
            raise AudioError(f"{path}: cannot be opened ({exc.strerror})") from exc
    if hasattr(source, "read"):
        # A file object is read from its beginning, whatever its current position.
        if not (hasattr(source, "seekable") and source.seekable()):
            return io.BytesIO(source.read()), name
        source.seek(0)
        return source, name
    raise AudioError(
        f"audio source: expected a path, bytes or a binary file object, got {type(source).__name__}"
    )


def _libsndfile_message(exc: BaseException) -> str:
    # LibsndfileError's str() embeds the repr of the stream object; its error_string does not.
    return getattr(exc, "error_string", None) or str(exc) or type(exc).__name__


@contextmanager
def _open(source: AudioSource) -> Iterator[tuple[sf.SoundFile, str, str]]:
    """Open ``source`` for decoding; yields the soundfile handle, the display name and the format."""
    with ExitStack() as stack:
        stream, name = _source_stream(source, stack)
        fmt = _detect_format(stream, name)
        stream.seek(0)
        handle_class = _ForwardOnlySoundFile if fmt in _SEEK_UNRELIABLE else sf.SoundFile
        try:
            handle = stack.enter_context(handle_class(stream))
        except _DECODE_ERRORS as exc:
            raise AudioError(
                f"{name}: corrupt or unreadable {fmt} data ({_libsndfile_message(exc)})"
            ) from exc
        if handle.samplerate <= 0 or handle.channels <= 0:
            raise AudioError(
                f"{name}: corrupt {fmt} header (sample rate {handle.samplerate}, {handle.channels} channels)"
            )
        if handle.frames <= 0:
            raise AudioError(f"{name}: contains no audio samples")
        yield handle, name, fmt


def audio_info(source: AudioSource) -> AudioInfo:
    """Frames, sample rate, channels and container of ``source``, from its header only."""
    with _open(source) as (handle, _, fmt):
        return AudioInfo(
            frames=handle.frames, sample_rate=handle.samplerate, channels=handle.channels, format=fmt
        )


def _read_blocks(
    handle: sf.SoundFile, start: int, count: int, name: str, fmt: str, *, keep: bool
) -> list[np.ndarray]:
    """Decode ``count`` frames from the current position ``start``; returns them if ``keep``."""
    block = max(1, _BLOCK_SAMPLES // handle.channels)
    blocks = []
    done = 0
    while done < count:
        want = min(block, count - done)
        try:
            data = handle.read(want, dtype="float32", always_2d=True)
        except _DECODE_ERRORS as exc:
            raise AudioError(f"{name}: corrupt or truncated {fmt} data ({_libsndfile_message(exc)})") from exc
        if keep:
            blocks.append(data)
        done += len(data)
        if len(data) < want:
            raise AudioError(
                f"{name}: truncated or corrupt {fmt} data: the header declares {handle.frames} frames "
                f"but decoding stopped at frame {start + done}"
            )
    return blocks


def read_audio(source: AudioSource, start_frame: int = 0, num_frames: int | None = None) -> DecodedAudio:
    """Decode frames ``[start_frame, start_frame + num_frames)`` of ``source`` (to the end if None).

    Only that segment is held in memory. WAV, RF64 and FLAC seek straight to it; OGG and MP3 are
    decoded forward from the start (see ``_SEEK_UNRELIABLE``), which costs time (roughly 5-10 s
    per hour of audio skipped, on one core) but not memory.
    A segment running past the end is shortened, like a slice.
    """
    if isinstance(start_frame, bool) or not isinstance(start_frame, (int, np.integer)) or start_frame < 0:
        raise AudioError(f"start_frame: expected an integer >= 0, got {start_frame!r}")
    if num_frames is not None and (
        isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1
    ):
        raise AudioError(f"num_frames: expected None or an integer >= 1, got {num_frames!r}")
    with _open(source) as (handle, name, fmt):
        if start_frame >= handle.frames:
            raise AudioError(
                f"{name}: start_frame {start_frame} is past the end of the audio ({handle.frames} frames)"
            )
        stop = handle.frames if num_frames is None else min(handle.frames, start_frame + num_frames)
        if handle.seekable():
            try:
                handle.seek(start_frame)
            except _DECODE_ERRORS as exc:
                raise AudioError(f"{name}: cannot seek in {fmt} data ({_libsndfile_message(exc)})") from exc
        else:
            _read_blocks(handle, 0, start_frame, name, fmt, keep=False)
        blocks = _read_blocks(handle, start_frame, stop - start_frame, name, fmt, keep=True)
        samples = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        sample_rate = handle.samplerate
    finite = np.isfinite(samples).all(axis=1)
    if not finite.all():
        first = start_frame + int(np.argmin(finite))
        raise AudioError(f"{name}: contains NaN or infinite samples (first at frame {first})")
    return DecodedAudio(samples=samples, sample_rate=sample_rate)
