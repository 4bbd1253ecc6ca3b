"""The project's manifest: one JSON object per line, one audio clip per object.

Fields of a record (only `id` and `audio` are required):

* `id` (str): unique clip id.
* `audio` (str): path to the audio file, absolute or relative to the manifest's folder.
* `captions` (list[str]): free-text descriptions.
* `labels` (list[str]): class labels (one for single-label sets).
* `qa` (list[{"question": str, "answer": str}]): question-answer pairs.
* `event_description` (str): a generated clip's full description (`mint.data.synth`); clips with the
  same one are the same content, never each other's negatives in stage 1.
* `events` (list[{"label": str, "onset": float, "offset": float, "caption": str}]): timed sound events,
  onset and offset in seconds from the start of the file (offset >= onset >= 0), `label` the event's class,
  `caption` (optional) a short noun phrase for that one event, e.g. "a loud long high-pitched siren". The
  generated corpora (`mint.data.synth`) write them; a model's answers about time are scored against them.
* `split`, `fold`, `duration`, `source`: optional metadata kept as given.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mint.errors import DataError


@dataclass
class QAPair:
    question: str
    answer: str


@dataclass
class TimedEvent:
    """One sound event of a clip: `onset`/`offset` in seconds from the start of the file."""

    label: str
    onset: float
    offset: float
    caption: str | None = None

    def to_json(self) -> dict:
        obj = {"label": self.label, "onset": self.onset, "offset": self.offset}
        if self.caption is not None:
            obj["caption"] = self.caption
        return obj


@dataclass
class ManifestRecord:
    id: str
    audio: str
    captions: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    qa: list[QAPair] = field(default_factory=list)
    split: str | None = None
    fold: int | None = None
    duration: float | None = None
    source: str | None = None
    event_description: str | None = None
    events: list[TimedEvent] = field(default_factory=list)

    def to_json(self) -> dict:
        obj = {key: value for key, value in asdict(self).items() if value not in (None, [], {})}
        if self.events:
            # asdict would write `"caption": null` for uncaptioned events; the format leaves it out.
            obj["events"] = [event.to_json() for event in self.events]
        return obj


_STRING_LISTS = ("captions", "labels")


def _string_list(value: object, where: str, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DataError(f"{where}: field '{key}' must be a list of strings, got {value!r}")
    return list(value)


def is_number(value: object) -> bool:
    # bool is an int to Python, but `true` is no time; NaN and infinity are no time either.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _timed_events(value: object, where: str) -> list[TimedEvent]:
    if not isinstance(value, list):
        raise DataError(
            f"{where}: field 'events' must be a list of {{label, onset, offset[, caption]}} objects, "
            f"got {value!r}"
        )
    known = set(TimedEvent.__dataclass_fields__)
    parsed = []
    for index, item in enumerate(value):
        name = f"events[{index}]"
        if not isinstance(item, dict):
            raise DataError(
                f"{where}: {name} must be a {{label, onset, offset[, caption]}} object, got {item!r}"
            )
        unknown = sorted(set(item) - known)
        if unknown:
            raise DataError(
                f"{where}: {name} has unknown field(s) {unknown}; known fields are {sorted(known)}"
            )
        missing = [key for key in ("label", "onset", "offset") if key not in item]
        if missing:
            raise DataError(f"{where}: {name} is missing required field(s) {missing}")
        label, onset, offset = item["label"], item["onset"], item["offset"]
        caption = item.get("caption")
        if not isinstance(label, str) or not label:
            raise DataError(f"{where}: {name}.label must be a non-empty string, got {label!r}")
        if not is_number(onset) or onset < 0:
            raise DataError(f"{where}: {name}.onset must be a number >= 0, got {onset!r}")
        if not is_number(offset) or offset < onset:
            raise DataError(f"{where}: {name}.offset must be a number >= onset ({onset!r}), got {offset!r}")
        if caption is not None and not isinstance(caption, str):
            raise DataError(f"{where}: {name}.caption must be a string, got {caption!r}")
        parsed.append(TimedEvent(label, float(onset), float(offset), caption))
    return parsed


def record_from_json(obj: object, where: str) -> ManifestRecord:
    """Validate one decoded manifest line; `where` names the file and line for errors."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    known = set(ManifestRecord.__dataclass_fields__)
    unknown = sorted(set(obj) - known)
    if unknown:
        raise DataError(f"{where}: unknown field(s) {unknown}; known fields are {sorted(known)}")
    for key in ("id", "audio"):
        if key not in obj:
            raise DataError(f"{where}: missing required field '{key}'")
        if not isinstance(obj[key], str) or not obj[key]:
            raise DataError(f"{where}: field '{key}' must be a non-empty string, got {obj[key]!r}")
    values = dict(obj)
    for key in _STRING_LISTS:
        if key in values:
            values[key] = _string_list(values[key], where, key)
    if "qa" in values:
        pairs = values["qa"]
        if not isinstance(pairs, list):
            raise DataError(f"{where}: field 'qa' must be a list of {{question, answer}} objects")
        parsed = []
        for index, pair in enumerate(pairs):
            if (
                not isinstance(pair, dict)
                or set(pair) != {"question", "answer"}
                or not all(isinstance(pair[k], str) for k in pair)
            ):
                raise DataError(
                    f"{where}: qa[{index}] must be {{'question': str, 'answer': str}}, got {pair!r}"
                )
            parsed.append(QAPair(**pair))
        values["qa"] = parsed
    if "events" in values:
        values["events"] = _timed_events(values["events"], where)
    if values.get("fold") is not None and not isinstance(values["fold"], int):
        raise DataError(f"{where}: field 'fold' must be an integer, got {values['fold']!r}")
    if values.get("event_description") is not None and not isinstance(values["event_description"], str):
        raise DataError(
            f"{where}: field 'event_description' must be a string, got {values['event_description']!r}"
        )
    if values.get("duration") is not None and not isinstance(values["duration"], (int, float)):
        raise DataError(f"{where}: field 'duration' must be a number, got {values['duration']!r}")
    return ManifestRecord(**values)


def iter_manifest(path: str | os.PathLike) -> Iterator[ManifestRecord]:
    """Stream records; audio paths are resolved against the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: manifest file not found")
    base = path.parent
    seen: set[str] = set()
    with path.open("rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            where = f"{path}:{line_number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"{where}: not UTF-8 text (byte {error.start + 1} of the line)") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
            record = record_from_json(obj, where)
            if record.id in seen:
                raise DataError(f"{where}: duplicate id {record.id!r}")
            seen.add(record.id)
            if not os.path.isabs(record.audio):
                record.audio = str(base / record.audio)
            yield record


def read_manifest(path: str | os.PathLike) -> list[ManifestRecord]:
    return list(iter_manifest(path))


def write_manifest(records: Iterable[ManifestRecord], path: str | os.PathLike) -> int:
    """Write atomically (temp file + rename); audio paths under the manifest's folder are stored relative."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    count = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for record in records:
                obj = record.to_json()
                audio = Path(record.audio)
                if audio.is_absolute() and audio.resolve().is_relative_to(base):
                    obj["audio"] = str(audio.resolve().relative_to(base))
                handle.write(json.dumps(obj, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return count
