"""The synthetic corpus: clips defined by (spec, index) alone, generated on the fly or written to disk.

Clip `index` of a spec is drawn from `np.random.SeedSequence([seed, index])`, so any clip can be
made in any order, in any process, without generating the ones before it. `generate_corpus`
writes 16-bit WAVs and one manifest per split; it is atomic per file (temp name, then rename) and
resumable (complete files are kept, unchanged manifests are not rewritten). Every record lists its events
with their onsets and offsets (`ManifestRecord.events`); `SynthSpec.timing` adds captions and questions
that say when they happen.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from mint.data.manifest import ManifestRecord, QAPair, TimedEvent, read_manifest, write_manifest
from mint.data.synth.events import EVENT_KINDS, check_kinds
from mint.data.synth.scenes import Scene, min_clip_seconds, render_scene, sample_scene
from mint.data.synth.speech import SPLITS as SPEECH_SPLITS
from mint.data.synth.text import captions, event_description, labels, question_answers, timed_events
from mint.errors import ConfigError, DataError, MintError

SOURCE = "mint-synth"
DEFAULT_SPLITS = {"train": 0.8, "val": 0.1, "test": 0.1}
_SPEC_FILE = "synth_spec.json"
SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass
class SynthSpec:
    """What to generate. Every field takes part in the clips' content, so a corpus folder records it."""

    num_clips: int
    seed: int = 0
    sample_rate: int = 16000
    clip_seconds: float = 4.0
    min_events: int = 1
    max_events: int = 3
    event_kinds: list[str] | None = None
    snr_db_range: tuple[float, float] = (10.0, 30.0)
    # The share of clips in which one event is a spoken word (espeak-ng), and whose voices say it: "train"
    # or "held_out" (accents, variants, rates and pitches that a "train" corpus never has).
    speech_share: float = 0.0
    speech_voices: str = "train"
    # Timed captions and questions ("when does the siren start?" -> "at 0.4 seconds"); the audio is the
    # same either way. Off by default, so corpora made before it existed keep their text.
    timing: bool = False

    def __post_init__(self) -> None:
        self.snr_db_range = tuple(self.snr_db_range)
        if not isinstance(self.num_clips, int) or self.num_clips < 1:
            raise ConfigError(f"synth.num_clips: expected a positive integer, got {self.num_clips!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"synth.seed: expected a non-negative integer, got {self.seed!r}")
        if not isinstance(self.sample_rate, int) or self.sample_rate < 16000:
            raise ConfigError(
                f"synth.sample_rate: expected an integer >= 16000 (bird chirps reach 6 kHz), got {self.sample_rate!r}"
            )
        kinds = list(EVENT_KINDS) if self.event_kinds is None else list(self.event_kinds)
        check_kinds(kinds, "synth.event_kinds")
        if len(set(kinds)) != len(kinds):
            raise ConfigError(f"synth.event_kinds: expected distinct kinds, got {kinds!r}")
        if not 1 <= self.min_events <= self.max_events <= len(kinds):
            raise ConfigError(
                f"synth.min_events/max_events: expected 1 <= min_events <= max_events <= {len(kinds)} "
                f"(the number of event kinds), got {self.min_events} and {self.max_events}"
            )
        if self.clip_seconds < min_clip_seconds(self.max_events):
            raise ConfigError(
                f"synth.clip_seconds: {self.max_events} events need at least "
                f"{min_clip_seconds(self.max_events):.2f} s, got {self.clip_seconds!r}"
            )
        if not 0.0 <= self.speech_share <= 1.0:
            raise ConfigError(f"synth.speech_share: expected a fraction in [0, 1], got {self.speech_share!r}")
        if self.speech_voices not in SPEECH_SPLITS:
            raise ConfigError(
                f"synth.speech_voices: expected one of {SPEECH_SPLITS}, got {self.speech_voices!r}"
            )
        if len(self.snr_db_range) != 2 or self.snr_db_range[0] > self.snr_db_range[1]:
            raise ConfigError(
                f"synth.snr_db_range: expected (low, high) with low <= high, got {self.snr_db_range!r}"
            )
        if not isinstance(self.timing, bool):
            raise ConfigError(f"synth.timing: expected true or false, got {self.timing!r}")

    @property
    def vocabulary(self) -> list[str]:
        return list(EVENT_KINDS) if self.event_kinds is None else list(self.event_kinds)


def single_event_spec(num_clips: int, seed: int = 0, **fields: object) -> SynthSpec:
    """Clips holding exactly one event: the zero-shot classification set (labels = one kind)."""
    return SynthSpec(num_clips=num_clips, seed=seed, min_events=1, max_events=1, **fields)


@dataclass
class SynthExample:
    audio: np.ndarray
    captions: list[str]
    labels: list[str]
    qa: list[QAPair]
    scene: Scene = field(repr=False)

    @property
    def event_description(self) -> str:
        return event_description(self.scene)

    @property
    def events(self) -> list[TimedEvent]:
        """Each event's kind, onset and offset in seconds (the manifest's `events`)."""
        return timed_events(self.scene.events)


def clip_id(spec: SynthSpec, index: int) -> str:
    return f"synth-s{spec.seed}-{index:06d}"


def _describe(spec: SynthSpec, index: int) -> tuple[Scene, list[str], list[str], list[QAPair]]:
    """The clip's scene and text, without rendering audio (cheap: used to rebuild manifests)."""
    if not isinstance(index, (int, np.integer)) or not 0 <= index < spec.num_clips:
        raise DataError(f"synth index: expected an integer in [0, {spec.num_clips}), got {index!r}")
    scene_seed, text_seed = np.random.SeedSequence([spec.seed, int(index)]).spawn(2)
    scene = sample_scene(
        np.random.default_rng(scene_seed),
        event_kinds=spec.event_kinds,
        clip_seconds=spec.clip_seconds,
        min_events=spec.min_events,
        max_events=spec.max_events,
        snr_db_range=spec.snr_db_range,
        speech_share=spec.speech_share,
        speech_voices=spec.speech_voices,
    )
    qa = question_answers(
        scene,
        np.random.default_rng(text_seed),
        spec.vocabulary,
        speech=spec.speech_share > 0,
        timing=spec.timing,
    )
    return scene, captions(scene, timing=spec.timing), labels(scene), qa


def synth_example(spec: SynthSpec, index: int) -> SynthExample:
    """Clip `index` of the corpus: float32 audio at `spec.sample_rate` and its text."""
    scene, caption_list, label_list, qa = _describe(spec, index)
    return SynthExample(render_scene(scene, spec.sample_rate), caption_list, label_list, qa, scene)


def split_ranges(num_clips: int, splits: dict[str, float]) -> dict[str, range]:
    """Contiguous index ranges per split (clips are i.i.d., so contiguity biases nothing)."""
    if not splits:
        raise ConfigError("splits: expected at least one split")
    for name, fraction in splits.items():
        if not SPLIT_NAME.match(name):
            raise ConfigError(f"splits: split name {name!r} must be letters, digits, '_' or '-'")
        if not isinstance(fraction, (int, float)) or fraction < 0:
            raise ConfigError(f"splits.{name}: expected a non-negative fraction, got {fraction!r}")
    total = sum(splits.values())
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"splits: fractions must sum to 1, got {total}")
    bounds = np.rint(np.cumsum([0.0, *splits.values()]) * num_clips).astype(int)
    bounds[-1] = num_clips
    return {name: range(bounds[i], bounds[i + 1]) for i, name in enumerate(splits)}


# The helpers below are shared with `mint.data.synth.long_scenes`, whose corpus resumes the same way.


def is_complete_wav(path: Path, sample_rate: int, frames: int) -> bool:
    """Whether `path` is a readable audio file of exactly this rate and length (a finished write)."""
    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError):
        return False
    return info.samplerate == sample_rate and info.frames == frames


def part_path(path: str | os.PathLike) -> Path:
    # The temp name is fixed per file, so an interrupted run leaves no litter behind on the next one.
    return Path(path).with_name(f".{Path(path).name}.part")


def _write_clip(job: tuple[SynthSpec, int, str]) -> None:
    spec, index, path = job
    audio = synth_example(spec, index).audio
    tmp = part_path(path)
    sf.write(str(tmp), audio, spec.sample_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def run_jobs(write: Callable[[tuple], None], jobs: list[tuple], workers: int, desc: str, unit: str) -> None:
    """`write(job)` for every job, in `workers` processes when there is more than one job."""
    with tqdm(total=len(jobs), desc=desc, unit=unit, disable=not jobs) as progress:
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(write, jobs, chunksize=max(1, len(jobs) // (8 * workers))):
                    progress.update()
        else:
            for job in jobs:
                write(job)
                progress.update()


def check_spec_file(out_dir: Path, description: dict) -> None:
    path = out_dir / _SPEC_FILE
    if path.exists():
        try:
            existing = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise DataError(f"{path}: unreadable corpus description ({error})") from None
        if existing != description:
            raise DataError(
                f"{path}: this folder holds a corpus made from a different spec or splits "
                f"({existing}); expected {description}. Use another folder or remove this one."
            )
        return
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(description, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _manifest_unchanged(path: Path, records: list[ManifestRecord]) -> bool:
    if not path.exists():
        return False
    try:
        existing = read_manifest(path)
    except MintError:
        return False
    return [record.to_json() for record in existing] == [record.to_json() for record in records]


def write_manifest_if_changed(path: Path, records: list[ManifestRecord]) -> None:
    # An unchanged manifest keeps its modification time, so a rerun that makes nothing new changes nothing.
    if not _manifest_unchanged(path, records):
        write_manifest(records, path)


def _spec_description(spec: SynthSpec) -> dict:
    """The spec as the folder's spec file records it. `timing` is left out when off, so folders written
    before the field existed still match the spec that made them."""
    description = json.loads(json.dumps(asdict(spec)))
    if not spec.timing:
        del description["timing"]
    return description


def generate_corpus(
    spec: SynthSpec,
    out_dir: str | os.PathLike,
    workers: int = 2,
    splits: dict[str, float] | None = None,
) -> Path:
    """Write `audio/<id>.wav` and `<split>.jsonl` under `out_dir` (returned); safe to rerun after a stop."""
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    ranges = split_ranges(spec.num_clips, splits)
    out_dir = Path(out_dir).resolve()
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    check_spec_file(out_dir, {"spec": _spec_description(spec), "splits": splits})

    paths = [audio_dir / f"{clip_id(spec, index)}.wav" for index in range(spec.num_clips)]
    frames = round(spec.clip_seconds * spec.sample_rate)
    jobs = [
        (spec, index, str(path))
        for index, path in enumerate(paths)
        if not is_complete_wav(path, spec.sample_rate, frames)
    ]
    run_jobs(_write_clip, jobs, workers, desc="synth clips", unit="clip")

    for name, indices in ranges.items():
        records = []
        for index in indices:
            scene, caption_list, label_list, qa = _describe(spec, index)
            records.append(
                ManifestRecord(
                    id=clip_id(spec, index),
                    audio=str(paths[index]),
                    captions=caption_list,
                    labels=label_list,
                    qa=qa,
                    split=name,
                    duration=float(spec.clip_seconds),
                    source=SOURCE,
                    event_description=event_description(scene),
                    events=timed_events(scene.events),
                )
            )
        write_manifest_if_changed(out_dir / f"{name}.jsonl", records)
    return out_dir
