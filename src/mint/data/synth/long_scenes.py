"""Long recordings: minutes of coloured-noise background with single events and silences between them,
and text that says when each event happens.

Recording `index` of a `LongSceneSpec` is drawn from `np.random.SeedSequence([seed, index])` alone, like
the clips of `mint.data.synth.corpus`, so any recording can be made in any order. Its duration is uniform
in [min_seconds, max_seconds] (to 0.1 s); its events are `sample_event` draws of any kind, none
overlapping another: at least `MIN_GAP_SECONDS` of background alone between two events and at least
`EDGE_SECONDS` before the first and after the last. Their number is 1 + Poisson(rate x minutes - 1), so
the expected rate is `events_per_minute` (whenever a recording is long enough to expect one event), and
given the number, the silence left over is split at uniform random points (the gaps of a Poisson process
given its count). A recording with more events than fit loses its last ones; at the allowed rates
(`MAX_EVENTS_PER_MINUTE`) that is rare.

The audio is never held whole. `iter_long_audio` makes it chunk by chunk and `render_long_recording`
writes a 16-bit WAV as it goes, so an hour renders in the memory of one chunk. The samples do not depend
on the chunk size:

* the background is made in fixed segments of `NOISE_SEGMENT_SECONDS` on the recording's own sample grid,
  each the `coloured_noise` of its own random stream, joined by equal-power crossfades of
  `NOISE_CROSSFADE_SECONDS`. The segments are independent, so cos^2 + sin^2 = 1 keeps the expected power
  (and with it the level and the spectrum's shape) constant through a join, and both sides are continuous
  there, so a join has no click. Any span of the background can be made alone, from the segments it
  touches; a chunk boundary is not a join and changes nothing.
* event k is rendered whole with `render_event` from the stream `render_scene` would give it (child k + 1
  of `SeedSequence(recording.seed)`; the background has child 0), and added to every chunk it overlaps.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from mint.data.manifest import ManifestRecord, QAPair, TimedEvent, is_number
from mint.data.synth.corpus import (
    SPLIT_NAME,
    check_spec_file,
    is_complete_wav,
    part_path,
    run_jobs,
    write_manifest_if_changed,
)
from mint.data.synth.events import EVENT_KINDS, SOFT_DBFS, Event, check_kinds, render_event, sample_event
from mint.data.synth.scenes import BACKGROUNDS, PlacedEvent, coloured_noise
from mint.data.synth.text import (
    NUMBER_WORDS,
    event_clause,
    format_clock,
    format_seconds,
    noun_phrase,
    timed_events,
    with_article,
)
from mint.errors import ConfigError, DataError

SOURCE = "mint-synth-long"
MIN_SECONDS = 5.0
MIN_GAP_SECONDS = 1.0
EDGE_SECONDS = 1.0
# At 20 a minute the events and their 1 s gaps take about 35 s of it on average, so the cap on how many
# fit (a 1.3 s event plus 1 s of silence each) is almost never what sets the count.
MAX_EVENTS_PER_MINUTE = 20.0
NOISE_SEGMENT_SECONDS = 2.0
NOISE_CROSSFADE_SECONDS = 0.1
# Onsets are placed on whole milliseconds, rounded up, so the manifest's 3-decimal times keep every gap
# >= MIN_GAP_SECONDS; each event may use up to this much of the silence for that.
_ROUNDING_RESERVE = 0.002
# Repeated-strike kinds are one event of several knocks or beeps; questions count the episodes.
_EPISODE_NAMES = {"knock": "knocking", "beep": "beeping"}
_TIMES = {1: "once", 2: "twice"}


@dataclass
class LongSceneSpec:
    """What to generate. Every field takes part in the recordings' content, so a corpus folder records it."""

    num_recordings: int
    seed: int = 0
    sample_rate: int = 16000
    min_seconds: float = 60.0
    max_seconds: float = 600.0
    events_per_minute: float = 4.0
    event_kinds: list[str] | None = None
    snr_db_range: tuple[float, float] = (10.0, 30.0)

    def __post_init__(self) -> None:
        self.snr_db_range = tuple(self.snr_db_range)
        count = self.num_recordings
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(
                f"long.num_recordings: expected a positive integer, got {self.num_recordings!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"long.seed: expected a non-negative integer, got {self.seed!r}")
        if not isinstance(self.sample_rate, int) or self.sample_rate < 16000:
            raise ConfigError(
                f"long.sample_rate: expected an integer >= 16000 (bird chirps reach 6 kHz), got {self.sample_rate!r}"
            )
        if not is_number(self.min_seconds) or self.min_seconds < MIN_SECONDS:
            raise ConfigError(
                f"long.min_seconds: expected a number >= {MIN_SECONDS} (1 s of background at each end "
                f"around the events), got {self.min_seconds!r}"
            )
        if not is_number(self.max_seconds) or self.max_seconds < self.min_seconds:
            raise ConfigError(
                f"long.max_seconds: expected a number >= min_seconds ({self.min_seconds!r}), got {self.max_seconds!r}"
            )
        if not is_number(self.events_per_minute) or not 0 < self.events_per_minute <= MAX_EVENTS_PER_MINUTE:
            raise ConfigError(
                f"long.events_per_minute: expected a number in (0, {MAX_EVENTS_PER_MINUTE}] (events are "
                f"separated by at least {MIN_GAP_SECONDS} s), got {self.events_per_minute!r}"
            )
        kinds = self.vocabulary
        check_kinds(kinds, "long.event_kinds")
        if len(set(kinds)) != len(kinds):
            raise ConfigError(f"long.event_kinds: expected distinct kinds, got {kinds!r}")
        if (
            len(self.snr_db_range) != 2
            or not all(is_number(value) for value in self.snr_db_range)
            or self.snr_db_range[0] > self.snr_db_range[1]
        ):
            raise ConfigError(
                f"long.snr_db_range: expected (low, high) with low <= high, got {self.snr_db_range!r}"
            )

    @property
    def vocabulary(self) -> list[str]:
        return list(EVENT_KINDS) if self.event_kinds is None else list(self.event_kinds)


@dataclass(frozen=True)
class LongRecording:
    """Events sorted by onset, in seconds from the start; `seed` drives every random choice of rendering."""

    seconds: float
    events: tuple[PlacedEvent, ...]
    background: str
    snr_db: float
    seed: int

    @property
    def kinds(self) -> list[str]:
        return [placed.event.kind for placed in self.events]

    def num_samples(self, sample_rate: int) -> int:
        return round(self.seconds * sample_rate)


def build_long_recording(
    seconds: float,
    events: Sequence[tuple[Event, float]],
    background: str = "pink",
    snr_db: float = 20.0,
    seed: int = 0,
) -> LongRecording:
    """A recording of `seconds` with the given (event, onset in seconds) pairs, e.g. a 60-minute file with
    one siren at minute 47. Events may overlap here (their sum is rendered); each must end by `seconds`."""
    if not is_number(seconds) or seconds <= 0:
        raise ConfigError(f"long recording seconds: expected a positive number, got {seconds!r}")
    if background not in BACKGROUNDS:
        raise ConfigError(
            f"long recording background: expected one of {list(BACKGROUNDS)}, got {background!r}"
        )
    if not is_number(snr_db):
        raise ConfigError(f"long recording snr_db: expected a number, got {snr_db!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"long recording seed: expected a non-negative integer, got {seed!r}")
    placed = []
    for index, (event, onset) in enumerate(events):
        if not isinstance(event, Event):
            raise ConfigError(f"long recording events[{index}]: expected an Event, got {event!r}")
        if not is_number(onset) or onset < 0:
            raise ConfigError(f"long recording events[{index}]: onset must be a number >= 0, got {onset!r}")
        if onset + event.seconds > seconds:
            raise ConfigError(
                f"long recording events[{index}]: the {event.kind} ends at {onset + event.seconds:.3f} s, "
                f"after the recording's {seconds} s"
            )
        placed.append(PlacedEvent(event, float(onset)))
    placed.sort(key=lambda item: item.onset)  # stable: events given at the same onset keep their order
    return LongRecording(float(seconds), tuple(placed), background, float(snr_db), int(seed))


def _ceil_ms(seconds: float) -> float:
    # Rounding the product first keeps float noise (12345.000000001) from adding a whole millisecond.
    return math.ceil(round(seconds * 1000.0, 6)) / 1000.0


def _needed_seconds(events: list[Event]) -> float:
    return (
        2 * EDGE_SECONDS
        + sum(event.seconds for event in events)
        + (len(events) - 1) * MIN_GAP_SECONDS
        + len(events) * _ROUNDING_RESERVE
    )


def _place(events: list[Event], seconds: float, rng: np.random.Generator) -> tuple[PlacedEvent, ...]:
    """Onsets with the silence beyond the minimum gaps split at uniform random points."""
    free = seconds - _needed_seconds(events)
    slack = np.diff(np.concatenate([[0.0], np.sort(rng.uniform(0.0, free, size=len(events)))]))
    placed = []
    earliest = EDGE_SECONDS
    for event, extra in zip(events, slack, strict=True):
        onset = _ceil_ms(earliest + float(extra))
        placed.append(PlacedEvent(event, onset))
        offset = onset + event.seconds
        # The next gap counts from the offset as written to the manifest too (rounded to the millisecond).
        earliest = max(offset, round(offset, 3)) + MIN_GAP_SECONDS
    return tuple(placed)


def _draw_recording(spec: LongSceneSpec, rng: np.random.Generator) -> LongRecording:
    seconds = round(float(rng.uniform(spec.min_seconds, spec.max_seconds)), 1)
    seconds = min(max(seconds, spec.min_seconds), spec.max_seconds)  # bounds that are not whole tenths
    expected = spec.events_per_minute * seconds / 60.0
    count = 1 + int(rng.poisson(max(expected - 1.0, 0.0)))
    kinds = spec.vocabulary
    events = [sample_event(rng, kinds[int(rng.integers(len(kinds)))]) for _ in range(count)]
    while len(events) > 1 and _needed_seconds(events) > seconds:
        events.pop()
    return LongRecording(
        seconds=float(seconds),
        events=_place(events, seconds, rng),
        background=BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))],
        snr_db=float(rng.uniform(*spec.snr_db_range)),
        seed=int(rng.integers(2**63)),
    )


def _child(root: np.random.SeedSequence, index: int) -> np.random.SeedSequence:
    """`root.spawn(n)[index]` for any n, without spawning the ones before it."""
    return np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, index), pool_size=root.pool_size)


def background_span(
    colour: str, seed: np.random.SeedSequence, sample_rate: int, start: int, stop: int
) -> np.ndarray:
    """Samples [start, stop) of an endless unit-RMS coloured noise made of crossfaded fixed segments
    (module docstring); the same samples whichever span they are made in."""
    hop = round(NOISE_SEGMENT_SECONDS * sample_rate)
    fade = round(NOISE_CROSSFADE_SECONDS * sample_rate)
    # Segment j covers [j * hop - fade, (j + 1) * hop): its first `fade` samples overlap the last of j - 1.
    # Fade-in sin, fade-out its mirror image cos, on the same samples: squares that sum to 1.
    ramp = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade)
    window = np.concatenate([ramp, np.ones(hop - fade), ramp[::-1]])
    out = np.zeros(stop - start)
    for segment in range(start // hop, (stop - 1 + fade) // hop + 1):
        begin = segment * hop - fade
        lo, hi = max(begin, start), min(begin + hop + fade, stop)
        if lo >= hi:
            continue
        noise = coloured_noise(colour, hop + fade, np.random.default_rng(_child(seed, segment)))
        out[lo - start : hi - start] += (noise * window)[lo - begin : hi - begin]
    return out


def iter_long_audio(
    recording: LongRecording, sample_rate: int = 16000, chunk_seconds: float = 30.0
) -> Iterator[np.ndarray]:
    """The recording as consecutive float32 chunks of `chunk_seconds` (the last one shorter), within
    [-1, 1]. Memory is a few chunks plus the events that overlap one, whatever the recording's length."""
    if not isinstance(sample_rate, int) or sample_rate < 16000:
        raise ConfigError(f"sample_rate: expected an integer >= 16000, got {sample_rate!r}")
    if not is_number(chunk_seconds) or chunk_seconds <= 0:
        raise ConfigError(f"chunk_seconds: expected a positive number, got {chunk_seconds!r}")
    total = recording.num_samples(sample_rate)
    chunk = max(1, round(chunk_seconds * sample_rate))
    root = np.random.SeedSequence(recording.seed)
    background_rms = 10.0 ** ((SOFT_DBFS - recording.snr_db) / 20.0)
    starts = [round(placed.onset * sample_rate) for placed in recording.events]
    pending = 0
    active: list[tuple[int, np.ndarray]] = []  # events begun and not yet ended, in onset order
    for begin in range(0, total, chunk):
        end = min(begin + chunk, total)
        mix = background_rms * background_span(recording.background, _child(root, 0), sample_rate, begin, end)
        while pending < len(starts) and starts[pending] < end:
            stream = np.random.default_rng(_child(root, pending + 1))
            active.append(
                (starts[pending], render_event(recording.events[pending].event, sample_rate, stream))
            )
            pending += 1
        for start, wave in active:
            lo, hi = max(start, begin), min(start + len(wave), end)
            if lo < hi:
                mix[lo - begin : hi - begin] += wave[lo - start : hi - start]
        active = [(start, wave) for start, wave in active if start + len(wave) > end]
        # Events never overlap in a sampled recording and peak well below 1; only overlapping loud
        # events given to build_long_recording could reach it, and a file cannot be rescaled afterwards.
        np.clip(mix, -1.0, 1.0, out=mix)
        yield mix.astype(np.float32)


def render_long_recording(
    recording: LongRecording, path: str | os.PathLike, chunk_seconds: float = 30.0, sample_rate: int = 16000
) -> Path:
    """Write the recording as a 16-bit mono WAV at `path` (returned), chunk by chunk, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = part_path(path)
    try:
        with sf.SoundFile(
            str(tmp), "w", samplerate=sample_rate, channels=1, subtype="PCM_16", format="WAV"
        ) as handle:
            for chunk in iter_long_audio(recording, sample_rate, chunk_seconds):
                handle.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# Text: what a long recording holds and when, read off its events.


def _count_text(count: int) -> str:
    return NUMBER_WORDS[count] if count < len(NUMBER_WORDS) else str(count)


def _length_text(seconds: float) -> str:
    """'a 45-second', 'an 8-minute': the recording's length as a caption says it, with its article."""
    number, unit = (round(seconds), "second") if seconds < 59.5 else (round(seconds / 60.0), "minute")
    # Said aloud, 8, 11, 18 and 80-89 (and 800-899, ...) begin with a vowel: "an 8-minute recording".
    article = "an" if str(number).startswith("8") or number in (11, 18) else "a"
    return f"{article} {number}-{unit}"


def _name(kind: str) -> str:
    return _EPISODE_NAMES.get(kind, kind)


def long_labels(recording: LongRecording) -> list[str]:
    """Event kinds in order of first appearance, each once."""
    return list(dict.fromkeys(recording.kinds))


def long_captions(recording: LongRecording) -> list[str]:
    """Four paraphrases: the events in order with clock times ("a siren at 0:47, then a knock at 1:12"),
    the same with each event's attributes, a summary ("a 3-minute recording with 12 sounds over pink
    noise"), and how many times each kind is heard."""
    count = len(recording.events)
    noun = "sound" if count == 1 else "sounds"
    summary = f"{_length_text(recording.seconds)} recording with {_count_text(count)} {noun} over {recording.background} noise"
    if not recording.events:
        return [summary, f"{recording.background} noise alone"]
    timeline = ", then ".join(
        f"{with_article(placed.event.kind)} at {format_clock(placed.onset)}" for placed in recording.events
    )
    detailed = ", then ".join(
        f"{noun_phrase(placed.event, detailed=True)} at {format_clock(placed.onset)}"
        for placed in recording.events
    )
    counts = Counter(recording.kinds)
    parts = [
        f"{with_article(kind)} {_TIMES.get(counts[kind], f'{_count_text(counts[kind])} times')}"
        for kind in long_labels(recording)
    ]
    heard = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return [timeline, detailed, summary, f"{heard} over {recording.background} noise"]


def long_question_answers(
    recording: LongRecording, rng: np.random.Generator, vocabulary: list[str]
) -> list[QAPair]:
    """Temporal QA: the number of sounds, the first and last, and per kind when it first starts (and,
    heard more than once, when it last ends), how many times it is heard and what happens after it;
    one kind of `vocabulary` that is absent ("zero" times) and the background."""
    events = recording.events
    pairs = [QAPair("how many sounds are there?", _count_text(len(events)))]
    if events:
        pairs.append(QAPair("what is the first sound?", events[0].event.kind))
        pairs.append(QAPair("what is the last sound?", events[-1].event.kind))
    counts = Counter(recording.kinds)
    for kind in long_labels(recording):
        name = _name(kind)
        indices = [index for index, placed in enumerate(events) if placed.event.kind == kind]
        first, last = events[indices[0]], events[indices[-1]]
        pairs.append(QAPair(f"when does the first {name} start?", f"at {format_seconds(first.onset)}"))
        if counts[kind] > 1:
            pairs.append(QAPair(f"when does the last {name} end?", f"at {format_seconds(last.offset)}"))
        pairs.append(QAPair(f"how many times is the {name} heard?", _count_text(counts[kind])))
        if indices[0] + 1 < len(events):
            which = "the first" if counts[kind] > 1 else "the"
            pairs.append(
                QAPair(f"what happens after {which} {name}?", event_clause(events[indices[0] + 1].event))
            )
    absent = [kind for kind in vocabulary if kind not in counts]
    if absent:
        missing = absent[int(rng.integers(len(absent)))]
        pairs.append(QAPair(f"how many times is the {_name(missing)} heard?", "zero"))
    pairs.append(QAPair("what kind of background noise is there?", f"{recording.background} noise"))
    return pairs


# The corpus: recordings defined by (spec, index) alone, written to disk.


@dataclass
class LongExample:
    """Recording `index` of a spec and its text; its audio is made by `render_long_recording`."""

    id: str
    recording: LongRecording = field(repr=False)
    captions: list[str]
    labels: list[str]
    qa: list[QAPair]
    events: list[TimedEvent]


def long_recording_id(spec: LongSceneSpec, index: int) -> str:
    return f"synth-long-s{spec.seed}-{index:06d}"


def sample_long_recording(spec: LongSceneSpec, index: int) -> LongRecording:
    """Recording `index` of the spec, from `SeedSequence([seed, index])` alone."""
    return long_example(spec, index).recording


def long_example(spec: LongSceneSpec, index: int) -> LongExample:
    """Recording `index` and its captions, labels, QA and timed events (cheap: no audio)."""
    if (
        isinstance(index, bool)
        or not isinstance(index, (int, np.integer))
        or not 0 <= index < spec.num_recordings
    ):
        raise DataError(
            f"long recording index: expected an integer in [0, {spec.num_recordings}), got {index!r}"
        )
    layout_seed, text_seed = np.random.SeedSequence([spec.seed, int(index)]).spawn(2)
    recording = _draw_recording(spec, np.random.default_rng(layout_seed))
    return LongExample(
        id=long_recording_id(spec, int(index)),
        recording=recording,
        captions=long_captions(recording),
        labels=long_labels(recording),
        qa=long_question_answers(recording, np.random.default_rng(text_seed), spec.vocabulary),
        events=timed_events(recording.events),
    )


def _write_recording(job: tuple[LongSceneSpec, int, str]) -> None:
    spec, index, path = job
    render_long_recording(sample_long_recording(spec, index), path, sample_rate=spec.sample_rate)


def generate_long_corpus(
    spec: LongSceneSpec, out_dir: str | os.PathLike, workers: int = 2, split: str = "test"
) -> Path:
    """Write `audio/<id>.wav` and `<split>.jsonl` under `out_dir` (returned); safe to rerun after a stop:
    complete files are kept, an unchanged manifest is not rewritten, and a folder made from another spec
    is refused."""
    if not isinstance(split, str) or not SPLIT_NAME.match(split):
        raise ConfigError(f"split: split name {split!r} must be letters, digits, '_' or '-'")
    out_dir = Path(out_dir).resolve()
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    check_spec_file(out_dir, {"long_spec": json.loads(json.dumps(asdict(spec))), "split": split})

    examples = [long_example(spec, index) for index in range(spec.num_recordings)]
    paths = [audio_dir / f"{example.id}.wav" for example in examples]
    jobs = [
        (spec, index, str(path))
        for index, (example, path) in enumerate(zip(examples, paths, strict=True))
        if not is_complete_wav(path, spec.sample_rate, example.recording.num_samples(spec.sample_rate))
    ]
    run_jobs(_write_recording, jobs, workers, desc="long recordings", unit="recording")

    records = [
        ManifestRecord(
            id=example.id,
            audio=str(path),
            captions=example.captions,
            labels=example.labels,
            qa=example.qa,
            split=split,
            duration=example.recording.seconds,
            source=SOURCE,
            events=example.events,
        )
        for example, path in zip(examples, paths, strict=True)
    ]
    write_manifest_if_changed(out_dir / f"{split}.jsonl", records)
    return out_dir
