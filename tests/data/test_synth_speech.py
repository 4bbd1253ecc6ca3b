"""Spoken words of the synthetic corpus: the vocabulary, the two disjoint sets of voices, what espeak-ng
renders, and what the scenes, captions and questions say about a word."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mint.data.synth.corpus import SynthSpec, synth_example
from mint.data.synth.events import SPEECH
from mint.data.synth.scenes import render_scene
from mint.data.synth.speech import THEMES, WORDS, speak, voices
from mint.errors import ConfigError
from mint_testing import missing


@pytest.fixture(autouse=True)
def espeak() -> None:
    import shutil

    if shutil.which("espeak-ng") is None:
        missing("espeak-ng on PATH (Debian package espeak-ng; make test installs it)")


def test_vocabulary_has_300_distinct_words_across_themes():
    assert len(WORDS) >= 300 and len(set(WORDS)) == len(WORDS)
    assert {"seven", "north", "stop", "dog", "alice"} <= set(WORDS)
    assert sum(len(words) for words in THEMES.values()) >= len(WORDS)


def test_held_out_voices_share_no_setting_with_training_voices():
    train, held_out = voices("train"), voices("held_out")
    for field in ("accent", "variant", "rate", "pitch"):
        assert not {getattr(v, field) for v in train} & {getattr(v, field) for v in held_out}, field
    assert {v.speaker for v in train} == {v.speaker for v in held_out} == {"a man", "a woman"}


def test_a_word_is_trimmed_normalised_and_the_same_every_time():
    voice = voices("train")[0]
    first, again = speak("elephant", voice, 16000), speak("elephant", voice, 16000)
    np.testing.assert_array_equal(first, again)
    assert first.dtype == np.float32 and float(np.max(np.abs(first))) == pytest.approx(1.0)
    assert 0.25 < len(first) / 16000 < 1.5
    # Trimmed: the first and last samples are within 2 % of the peak's threshold of the word itself.
    assert abs(first[0]) > 0.019 and abs(first[-1]) > 0.019
    faster = speak("elephant", voices("train")[-1], 16000)  # 190 words per minute instead of 140
    assert len(faster) < len(first)


def test_every_clip_of_an_all_speech_corpus_says_a_word_in_its_text():
    spec = SynthSpec(num_clips=12, seed=5, clip_seconds=4.0, speech_share=1.0, speech_voices="held_out")
    held_out = set(voices("held_out"))
    for index in range(spec.num_clips):
        example = synth_example(spec, index)
        speech = example.scene.speech
        assert speech is not None and speech.voice in held_out and speech.word in WORDS
        assert SPEECH in example.labels
        assert all(f"'{speech.word}'" in caption for caption in example.captions)
        answers = {pair.question: pair.answer for pair in example.qa}
        assert speech.word in answers.values()
        assert answers["who is speaking, a man or a woman?"] == speech.voice.speaker.removeprefix("a ")
        # The word is in the audio where the scene puts it: the same scene with the word silenced differs
        # from the clip only between the word's onset and offset.
        silenced = replace(
            example.scene,
            events=tuple(
                replace(p, event=replace(p.event, level_dbfs=-300.0)) if p.event.kind == SPEECH else p
                for p in example.scene.events
            ),
        )
        word = example.audio - render_scene(silenced, 16000)
        placed = next(p for p in example.scene.events if p.event.kind == SPEECH)
        start, stop = round(placed.onset * 16000), round(placed.offset * 16000) + 1
        inside = float(np.sum(word[start:stop] ** 2))
        assert inside > 0 and float(np.sum(word**2)) == pytest.approx(inside, rel=1e-3)


def test_speech_share_zero_leaves_a_corpus_as_it_was():
    plain = SynthSpec(num_clips=6, seed=9, clip_seconds=4.0)
    spoken = SynthSpec(num_clips=6, seed=9, clip_seconds=4.0, speech_share=0.0, speech_voices="held_out")
    for index in range(6):
        a, b = synth_example(plain, index), synth_example(spoken, index)
        np.testing.assert_array_equal(a.audio, b.audio)
        assert a.captions == b.captions and a.qa == b.qa


def test_speech_settings_are_checked():
    with pytest.raises(ConfigError, match=r"synth\.speech_share"):
        SynthSpec(num_clips=1, speech_share=1.5)
    with pytest.raises(ConfigError, match=r"synth\.speech_voices"):
        SynthSpec(num_clips=1, speech_share=0.5, speech_voices="test")
