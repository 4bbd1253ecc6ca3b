"""Spoken words for the synthetic corpus: a vocabulary of common English words, the voices that say them
(espeak-ng accents x voice variants x speaking rates x pitches), and the rendering of one word.

Voices come in two disjoint sets: the training set, and a held-out set of accents, variants, rates and
pitches that training never hears, on which spoken-word accuracy is measured. espeak-ng is a Debian
package (`apt-get install espeak-ng`; `make demo` and `make test` install it); its output is the same
for the same word and voice on every run.
"""

from __future__ import annotations

import io
import itertools
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache

import numpy as np
import soundfile as sf
import soxr

from mint.errors import DataError

# Common words people say to machines and to each other, by theme (each word once across themes).
_THEMES: dict[str, str] = {
    "numbers": "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen twenty thirty forty fifty hundred thousand first second third last next",
    "directions": "north south east west left right up down forward backward inside outside above below "
    "behind ahead",
    "commands": "stop go wait start open close push pull turn move run walk jump sit stand listen look "
    "come leave help call play pause repeat cancel save send",
    "answers": "yes no maybe okay please thanks hello goodbye sorry never always again",
    "animals": "dog cat horse cow sheep goat pig duck chicken rabbit mouse lion tiger bear wolf fox deer "
    "monkey elephant zebra snake frog whale shark eagle owl parrot turtle",
    "names": "alice bob charlie david emma frank grace henry isabel jack kate lucy mary nathan oliver "
    "peter sarah thomas victor william",
    "colours": "red blue green yellow orange purple black white brown pink grey silver gold",
    "food": "apple banana bread butter cheese coffee cookie egg honey lemon milk orange_juice pasta "
    "pepper pizza potato rice salad salt soup sugar tea tomato water",
    "home": "door window table chair bed lamp clock phone kitchen garden stairs roof wall floor key "
    "mirror pillow blanket cup plate spoon knife fork bottle",
    "town": "street bridge station market school hospital library bank church museum park airport "
    "harbour river beach forest mountain village city road",
    "travel": "car bus train plane boat bicycle ticket taxi truck subway engine wheel",
    "time": "morning evening night today tomorrow yesterday monday friday sunday summer winter spring "
    "autumn minute hour week month year early late",
    "people": "mother father sister brother friend doctor teacher farmer driver baby child woman man",
    "weather": "rain snow wind storm cloud sun thunder fog ice",
    "feelings": "happy sad angry tired hungry thirsty cold hot quiet loud fast slow big small",
    "things": "music money paper letter picture camera radio guitar piano drum ball book pencil computer",
    "body": "hand head eye ear nose mouth foot arm leg heart hair tooth",
    "sports": "football tennis golf soccer swimming skiing",
}
# Words of more than one token are written with "_" above so that the themes split on spaces.
WORDS: tuple[str, ...] = tuple(
    dict.fromkeys(word.replace("_", " ") for text in _THEMES.values() for word in text.split())
)
THEMES: dict[str, tuple[str, ...]] = {
    theme: tuple(word.replace("_", " ") for word in text.split()) for theme, text in _THEMES.items()
}

# espeak-ng accents and voice variants (m: a man's voice, f: a woman's), split into heard and held out.
_TRAIN_ACCENTS = ("en-us", "en-gb", "en-gb-x-rp")
_HELD_OUT_ACCENTS = ("en-gb-scotland", "en-029")
_TRAIN_VARIANTS = ("m1", "m2", "m3", "m4", "f1", "f2", "f4")
_HELD_OUT_VARIANTS = ("m6", "m7", "f3", "f5")
_TRAIN_RATES = (140, 165, 190)  # words per minute
_HELD_OUT_RATES = (150, 178)
_TRAIN_PITCHES = (30, 50, 70)  # espeak-ng's 0-99 scale
_HELD_OUT_PITCHES = (40, 60)
SPLITS = ("train", "held_out")


@dataclass(frozen=True)
class Voice:
    accent: str
    variant: str
    rate: int
    pitch: int

    @property
    def speaker(self) -> str:
        """Who the captions say is speaking."""
        return "a woman" if self.variant.startswith("f") else "a man"

    @property
    def name(self) -> str:
        return f"{self.accent}+{self.variant}"


@cache
def voices(split: str) -> tuple[Voice, ...]:
    """Every voice of a split: "train" (heard in training) or "held_out" (accents, variants, rates and
    pitches that training never hears)."""
    if split == "train":
        grid = (_TRAIN_ACCENTS, _TRAIN_VARIANTS, _TRAIN_RATES, _TRAIN_PITCHES)
    elif split == "held_out":
        grid = (_HELD_OUT_ACCENTS, _HELD_OUT_VARIANTS, _HELD_OUT_RATES, _HELD_OUT_PITCHES)
    else:
        raise DataError(f"speech voices: expected a split in {SPLITS}, got {split!r}")
    return tuple(Voice(*settings) for settings in itertools.product(*grid))


def espeak_path() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise DataError(
            "espeak-ng is not installed: spoken words need it (Debian package espeak-ng: "
            "apt-get install espeak-ng; make demo installs it)"
        )
    return path


def speak(word: str, voice: Voice, sample_rate: int) -> np.ndarray:
    """The word said by `voice`, float32 mono at `sample_rate`, trimmed of leading and trailing silence
    and scaled to a peak of 1 (the scene sets its level)."""
    command = [
        espeak_path(),
        "-v",
        voice.name,
        "-s",
        str(voice.rate),
        "-p",
        str(voice.pitch),
        "--stdout",
        word,
    ]
    try:
        result = subprocess.run(command, capture_output=True, check=True, timeout=30)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        raise DataError(f"espeak-ng could not say {word!r} with voice {voice.name}: {error}") from error
    samples, rate = sf.read(io.BytesIO(result.stdout), dtype="float32")
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    if rate != sample_rate:
        samples = soxr.resample(samples, rate, sample_rate).astype(np.float32)
    loud = np.flatnonzero(np.abs(samples) > 0.02 * float(np.max(np.abs(samples), initial=0.0)))
    if loud.size == 0:
        raise DataError(f"espeak-ng said nothing for {word!r} with voice {voice.name}")
    samples = samples[loud[0] : loud[-1] + 1]
    return samples / float(np.max(np.abs(samples)))
