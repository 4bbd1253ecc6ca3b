"""Stage-2 instruction data: templates per task, (instruction, response) pairs read off clips, user-defined
instruction files, and a dataset addressed by (epoch, index) like the stage-1 pairs.

Tasks, and what a clip needs for each:

* `caption` (captions): one of the clip's captions.
* `classify` (labels): the label as an open answer (single-label clips), or multiple choice: one of the
  clip's labels among shuffled options drawn from labels the clip does not have.
* `qa` (question-answer pairs): the answer to one of the clip's questions.
* `tagging` (labels): all of the clip's labels, comma-separated, in the clip's order.
* `custom`: a line `{"audio", "instruction", "response"}` (optionally with `"id"`) of an instruction
  file, so that any task can be added through data alone.
* `sequence` (labels or captions): 2 to `sequence_windows` clips read as the consecutive windows of one
  recording, with a question about the whole (`mint.data.sequences`); off unless weighted.

With a feature cache, every item (a clip's or an instruction line's) carries the cached encoder output
instead of its waveform, as in stage 1: the instruction file's audio is keyed by its content digest like a
manifest's clips (`instruction_audio_source`), so `mint cache-features` caches it along with the source.

In training the template, the caption or QA pair, the correct option and the option order are drawn from
a generator seeded by (seed, epoch, index), so an item is the same in any worker, process or resumed run.
In evaluation (`rng=None`) all of it is fixed: the first template, the first caption or QA pair, ...
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from mint.audio.frontend import AudioFrontend
from mint.data.feature_cache import EncoderFeatureCache, FeatureCache
from mint.data.manifest import ManifestRecord
from mint.data.pairs import collate_windows
from mint.data.sequences import draw_parts, sequence_example, sequence_forms
from mint.data.sources import Clip, ClipSource, ManifestSource, SyntheticSource
from mint.errors import ConfigError, DataError

TASKS = ("caption", "classify", "qa", "tagging", "custom", "sequence")
# The tasks one clip answers on its own.
CLIP_TASKS = ("caption", "classify", "qa", "tagging")

# The first template of each task is the one evaluation and the `mint caption / ask / classify` commands use.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "caption": (
        "Describe the audio in one sentence.",
        "Write a short caption for this recording.",
        "What can be heard in this audio clip?",
        "Summarise the sounds of this clip in one sentence.",
    ),
    "classify": (
        "What sound event is heard in this audio? Answer with the name of the sound.",
        "Name the sound you hear.",
        "Which sound event does this clip contain?",
    ),
    "choice": (
        "Which of these sounds can be heard: {options}? Answer with one of them.",
        "Choose the sound in this clip from: {options}.",
        "Options: {options}. Which one is in the audio?",
    ),
    "qa": (
        "{question}",
        "Answer the question about the audio: {question}",
        "Listen and answer briefly: {question}",
    ),
    "tagging": (
        "List all sound events in this clip, separated by commas.",
        "Tag the audio with every sound event you hear.",
        "Which sound events occur in this recording? List them all.",
    ),
}
MAX_OPTIONS = 4


@dataclass(frozen=True)
class TaskWeights:
    """Relative share of each task among training items (0 turns a task off)."""

    caption: float = 1.0
    classify: float = 1.0
    qa: float = 1.0
    tagging: float = 0.5
    custom: float = 1.0
    sequence: float = 0.0

    def __post_init__(self) -> None:
        for task in TASKS:
            value = getattr(self, task)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"data.tasks.{task}: expected a finite weight >= 0, got {value!r}")
        if not any(getattr(self, task) > 0 for task in TASKS):
            raise ConfigError(f"data.tasks: every weight is 0; give at least one of {list(TASKS)} a weight")

    def weight(self, task: str) -> float:
        return float(getattr(self, task))


def evaluation_instruction(task: str, question: str | None = None, options: Sequence[str] = ()) -> str:
    """The fixed instruction of a task (its first template), as training shows it."""
    if task == "qa":
        if not question:
            raise ConfigError("question: the qa task needs a question")
        return TEMPLATES["qa"][0].format(question=question)
    if task == "choice":
        return TEMPLATES["choice"][0].format(options=", ".join(options))
    if task not in TEMPLATES:
        raise ConfigError(f"task: expected one of {sorted(TEMPLATES)}, got {task!r}")
    return TEMPLATES[task][0]


def _pick(options: Sequence, rng: np.random.Generator | None):
    return options[0] if rng is None else options[int(rng.integers(len(options)))]


def distractors(clip: Clip, vocabulary: Sequence[str]) -> list[str]:
    return [label for label in vocabulary if label not in clip.labels]


def clip_tasks(clip: Clip, vocabulary: Sequence[str]) -> list[str]:
    """The tasks this clip has data for (in `TASKS` order)."""
    tasks = []
    if clip.captions:
        tasks.append("caption")
    if clip.labels and (len(clip.labels) == 1 or distractors(clip, vocabulary)):
        tasks.append("classify")
    if clip.qa:
        tasks.append("qa")
    if clip.labels:
        tasks.append("tagging")
    return tasks


def _classification(
    clip: Clip, vocabulary: Sequence[str], rng: np.random.Generator | None
) -> tuple[str, str]:
    others = distractors(clip, vocabulary)
    open_answer = len(clip.labels) == 1
    # Both forms apply: half the training items ask for the open answer; evaluation always does.
    if open_answer and (not others or rng is None or rng.random() < 0.5):
        return _pick(TEMPLATES["classify"], rng), clip.labels[0]
    answer = _pick(clip.labels, rng)
    count = min(MAX_OPTIONS - 1, len(others))
    if rng is None:
        options = sorted([answer, *others[:count]])
    else:
        chosen = [others[i] for i in rng.choice(len(others), size=count, replace=False)]
        options = [answer, *chosen]
        options = [options[i] for i in rng.permutation(len(options))]
    return _pick(TEMPLATES["choice"], rng).format(options=", ".join(options)), answer


def make_example(
    task: str, clip: Clip, vocabulary: Sequence[str], rng: np.random.Generator | None = None
) -> tuple[str, str]:
    """(instruction, response) of `task` for `clip`; `rng=None` gives the fixed evaluation form."""
    if task not in clip_tasks(clip, vocabulary):
        raise DataError(f"clip {clip.id!r}: has no data for the {task!r} task")
    if task == "caption":
        return _pick(TEMPLATES["caption"], rng), _pick(clip.captions, rng)
    if task == "classify":
        return _classification(clip, vocabulary, rng)
    if task == "qa":
        pair = _pick(clip.qa, rng)
        return _pick(TEMPLATES["qa"], rng).format(question=pair.question), pair.answer
    return _pick(TEMPLATES["tagging"], rng), ", ".join(clip.labels)


def label_vocabulary(source: ClipSource) -> list[str]:
    """Every label of the source, for multiple-choice distractors (read from metadata, not audio)."""
    if isinstance(source, SyntheticSource):
        return source.spec.vocabulary
    if isinstance(source, ManifestSource):
        return sorted({label for record in source.records for label in record.labels})
    return sorted({label for index in range(len(source)) for label in source.clip(index).labels})


@dataclass
class InstructionRecord:
    audio: str
    instruction: str
    response: str
    id: str | None = None


def read_instruction_file(path: str | os.PathLike) -> list[InstructionRecord]:
    """Lines `{"audio", "instruction", "response"}` (+ optional `"id"`); relative audio paths are resolved
    against the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: instruction file not found")
    known = {field.name for field in fields(InstructionRecord)}
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        if set(obj) - known:
            raise DataError(
                f"{where}: unknown field(s) {sorted(set(obj) - known)}; known are {sorted(known)}"
            )
        for key in ("audio", "instruction", "response"):
            if not isinstance(obj.get(key), str) or not obj[key].strip():
                raise DataError(f"{where}: field {key!r} must be a non-empty string, got {obj.get(key)!r}")
        if "id" in obj and not isinstance(obj["id"], str):
            raise DataError(f"{where}: field 'id' must be a string, got {obj['id']!r}")
        record = InstructionRecord(**obj)
        if not os.path.isabs(record.audio):
            record.audio = str(path.parent / record.audio)
        records.append(record)
    if not records:
        raise DataError(f"{path}: holds no instruction lines")
    return records


def instruction_audio_source(records: Sequence[InstructionRecord]) -> ManifestSource:
    """The distinct audio files of instruction lines as a clip source (a clip's id is its path), so that the
    feature cache keys them by content digest exactly as it keys a manifest's clips."""
    paths = dict.fromkeys(record.audio for record in records)
    return ManifestSource([ManifestRecord(id=path, audio=path) for path in paths])


class InstructionDataset(Dataset):
    """Stage-2 items {waveform or features, instruction, response, task}, addressed by (epoch, index).

    Training: one item per clip of `source` (or per line of `custom` when there is no source). An item is
    a `custom` line (drawn at random) with probability w_custom / (w_custom + w_sequence + the clip tasks'
    summed weight), a `sequence` item with probability w_sequence / (the same sum): the clip and 1 to
    `sequence_windows - 1` others drawn at random, in a drawn order, as `windows` (a list of their audio)
    with a question about all of them; otherwise the clip's task is drawn among those it has data for,
    in proportion to the weights.
    Evaluation (`train=False`): every clip, then every custom line, once; a clip's task is its enabled
    task of highest weight; templates are fixed.
    With a `cache`, every item carries its cached `features` (from the evaluation crop) instead of a
    `waveform`; a clip or instruction file missing from it raises StaleCacheError naming it.
    """

    def __init__(
        self,
        source: ClipSource | None,
        frontend: AudioFrontend,
        seed: int,
        tasks: TaskWeights,
        custom: Sequence[InstructionRecord] = (),
        vocabulary: Sequence[str] | None = None,
        train: bool = True,
        cache: EncoderFeatureCache | FeatureCache | None = None,
        sequence_windows: int = 4,
    ) -> None:
        self.source = source
        self.frontend = frontend
        self.seed = seed
        self.tasks = tasks
        self.custom = list(custom) if tasks.custom > 0 else []
        self.vocabulary = list(vocabulary) if vocabulary is not None else []
        self.train = train
        self.cache = cache
        if sequence_windows < 2:
            raise ConfigError(f"data.sequence_windows: expected >= 2, got {sequence_windows}")
        self.sequence_windows = sequence_windows
        clip_weight = sum(tasks.weight(task) for task in CLIP_TASKS)
        if (source is None or clip_weight == 0) and not self.custom:
            raise ConfigError(
                "data.tasks: no enabled task has data (no clip source with a clip task weighted above 0, "
                "and no custom instruction lines with data.tasks.custom above 0)"
            )
        self.clip_weight = clip_weight if source is not None else 0.0
        # Sequences need at least two clips; a drawn set with data for none of their forms gives a clip item.
        sequence = tasks.sequence if source is not None and len(source) >= 2 else 0.0
        custom = tasks.custom if self.custom else 0.0
        total = custom + sequence + self.clip_weight
        self.custom_share = custom / total if total else 0.0
        self.sequence_share = sequence / total if total else 0.0

    def __len__(self) -> int:
        clips = len(self.source) if self.source is not None else 0
        if not self.train:
            return clips + len(self.custom)
        return clips or len(self.custom)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        rng = np.random.default_rng([self.seed, epoch, index])
        clips = len(self.source) if self.source is not None else 0
        if not self.train:
            return self._clip_item(index, None) if index < clips else self._custom_item(index - clips, None)
        if clips == 0:
            return self._custom_item(index, rng)
        if self.custom or self.sequence_share:
            draw = rng.random()
            if draw < self.custom_share:
                return self._custom_item(int(rng.integers(len(self.custom))), rng)
            if draw < self.custom_share + self.sequence_share:
                return self._sequence_item(index, rng)
        return self._clip_item(index, rng)

    def _custom_item(self, line: int, rng: np.random.Generator | None) -> dict:
        record = self.custom[line]
        if self.cache is not None:
            audio = {"features": self.cache.load(instruction_audio_source([record]), 0, record.audio)}
        else:
            audio = {"waveform": self.frontend.load(record.audio, rng=rng)}
        return {**audio, "instruction": record.instruction, "response": record.response, "task": "custom"}

    def _clip_audio(self, index: int, rng: np.random.Generator | None) -> tuple[Clip, dict]:
        if self.cache is not None:
            clip = self.source.clip(index)
            return clip, {"features": self.cache.load(self.source, index, clip.id)}
        clip, waveform = self.source.load(index, self.frontend, rng)
        return clip, {"waveform": waveform}

    def _sequence_item(self, index: int, rng: np.random.Generator) -> dict:
        chosen = draw_parts(len(self.source), index, self.sequence_windows, rng)
        parts = [self._clip_audio(clip, rng) for clip in chosen]
        clips = [clip for clip, _ in parts]
        if not sequence_forms(clips):
            return self._clip_item(index, rng)
        example = sequence_example(clips, self.vocabulary, rng)
        instruction = _pick(TEMPLATES["qa"], rng).format(question=example.question)
        response = example.answer
        return {
            "windows": [audio for _, audio in parts],
            "instruction": instruction,
            "response": response,
            "task": "sequence",
        }

    def _clip_item(self, index: int, rng: np.random.Generator | None) -> dict:
        clip, audio = self._clip_audio(index, rng)
        available = [task for task in clip_tasks(clip, self.vocabulary) if self.tasks.weight(task) > 0]
        if not available:
            raise DataError(
                f"clip {clip.id!r}: has data for none of the enabled tasks (data.tasks weights above 0); "
                "it needs captions, labels or qa pairs"
            )
        weights = np.array([self.tasks.weight(task) for task in available])
        if rng is None:
            task = available[int(np.argmax(weights))]
        else:
            task = available[int(rng.choice(len(available), p=weights / weights.sum()))]
        instruction, response = make_example(task, clip, self.vocabulary, rng)
        return {**audio, "instruction": instruction, "response": response, "task": task}


def collate_instructions(items: list[dict]) -> dict:
    """Instructions, responses and tasks as lists; the audio as `collate_windows` lays it out (a `sequence`
    item's windows as consecutive rows, with `windows`)."""
    return {
        **collate_windows(items),
        "instructions": [item["instruction"] for item in items],
        "responses": [item["response"] for item in items],
        "tasks": [item["task"] for item in items],
    }
