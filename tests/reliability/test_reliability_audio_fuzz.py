"""Mutation fuzzing of decode + front end: damaged real files raise AudioError or decode to sane audio.

Seeds are valid WAV, FLAC, OGG and MP3 files; each example applies a few bit flips, header byte
overwrites, truncations, deletions, duplications and splices (bytes taken from another seed file).
pytest-timeout bounds each test, so a mutation that made the decoder loop would fail it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from reliability_support import encode, tone

from mint.audio import AudioFrontend, FrontendConfig, audio_info, read_audio
from mint.errors import AudioError

RATE = 16000
SEEDS = {
    "WAV": encode(tone(0.25, RATE, channels=2), RATE, "WAV", "PCM_16"),
    "WAV_FLOAT": encode(tone(0.25, RATE), RATE, "WAV", "FLOAT"),
    "FLAC": encode(tone(0.25, RATE, channels=2), RATE, "FLAC"),
    "OGG": encode(tone(0.5, RATE), RATE, "OGG"),
    "MP3": encode(tone(0.5, RATE), RATE, "MP3"),
}
# Train and evaluation crops of 0.1 s at 8 kHz: a resampling path and a crop on every decode.
FRONTEND = AudioFrontend(FrontendConfig(sample_rate=8000, max_seconds=0.1))

_position = st.integers(min_value=0, max_value=1 << 20)
_length = st.integers(min_value=1, max_value=2048)
MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), _position, st.integers(0, 7)),
    st.tuples(st.just("header"), st.integers(0, 63), st.integers(0, 255)),
    st.tuples(st.just("truncate"), _position),
    st.tuples(st.just("delete"), _position, _length),
    st.tuples(st.just("duplicate"), _position, _length),
    st.tuples(st.just("splice"), _position, _position, _length, st.sampled_from(sorted(SEEDS))),
)


def mutate(data: bytes, mutations: list[tuple]) -> bytes:
    out = bytearray(data)
    for kind, *args in mutations:
        if not out:
            break
        if kind == "flip":
            position, bit = args
            out[position % len(out)] ^= 1 << bit
        elif kind == "header":
            position, value = args
            out[position % len(out)] = value
        elif kind == "truncate":
            del out[args[0] % len(out) :]
        elif kind == "delete":
            start, length = args
            del out[start % len(out) : start % len(out) + length]
        elif kind == "duplicate":
            start, length = args
            piece = out[start % len(out) : start % len(out) + length]
            out[start % len(out) : start % len(out)] = piece
        else:
            target, source, length, donor_name = args
            donor = SEEDS[donor_name]
            piece = donor[source % len(donor) : source % len(donor) + length]
            out[target % len(out) : target % len(out) + len(piece)] = piece
    return bytes(out)


def check_decodes_or_refuses(data: bytes) -> None:
    """Every entry point either returns well-formed audio or raises AudioError naming the source."""
    calls = (
        lambda: audio_info(data),
        lambda: read_audio(data),
        lambda: read_audio(data, start_frame=1000, num_frames=500),
        lambda: FRONTEND.load(data),
        lambda: FRONTEND.load(data, rng=np.random.default_rng(0)),
    )
    for call in calls:
        try:
            result = call()
        except AudioError as error:
            assert str(error).startswith("<bytes>:"), str(error)
            continue
        if hasattr(result, "samples"):
            assert result.samples.dtype == np.float32 and result.samples.ndim == 2
            assert np.isfinite(result.samples).all() and result.sample_rate > 0
        elif isinstance(result, np.ndarray):
            assert result.dtype == np.float32 and result.ndim == 1
            assert 1 <= len(result) <= FRONTEND.max_samples and np.isfinite(result).all()
        else:
            assert result.frames > 0 and result.sample_rate > 0 and result.channels > 0


def test_the_seeds_decode() -> None:
    for name, data in SEEDS.items():
        assert audio_info(data).frames > 0, name
        assert len(FRONTEND.load(data)) == FRONTEND.max_samples, name


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(sorted(SEEDS)), mutations=st.lists(MUTATIONS, min_size=1, max_size=4))
# Found by this test: two bytes fewer in a float WAV's header shift every sample into values near
# 3e38, finite but overflowing to NaN in the resampling filter.
@example(seed="WAV_FLOAT", mutations=[("delete", 78, 2)])
def test_mutated_audio_raises_only_audio_error(seed: str, mutations: list[tuple]) -> None:
    check_decodes_or_refuses(mutate(SEEDS[seed], mutations))
