"""Stage-1 (audio, caption) pairs: a dataset indexed by (epoch, clip index) and its collate function.

A classification set has labels but no captions; with `caption_templates` such a clip's captions are
its labels written into each template ("the sound of a {label}" -> "the sound of a dog bark"), with
the label text that zero-shot classification puts into its prompts (`label_text`), so training and
evaluation see the same words.

Each item also carries the keys that tell stage 1 which pairs are the same content
(`mint.objectives.keys`): its caption's, those of every caption of its clip, and the clip's groups:
the clip itself, the class labels its template captions were written from, and a generated clip's
event description.

With `sequence_share` > 0, that share of the training items reads 2 to `sequence_windows` clips, in a
drawn order, as the consecutive windows of one longer recording (`windows`, a list of their audio), and is
captioned by a caption of one of them: stage 1 then scores a recording by its best window, as retrieval
does for a long one (`mint.objectives.stage1`). Any caption of any of its clips describes the recording.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from mint.audio.frontend import AudioFrontend, pad_batch
from mint.data.feature_cache import EncoderFeatureCache, FeatureCache
from mint.data.sequences import draw_parts
from mint.data.sources import Clip, ClipSource
from mint.errors import ConfigError, DataError
from mint.objectives.keys import ContentKeys, caption_key, content_key

LABEL_SLOT = "{label}"


def label_text(label: str) -> str:
    """The natural text of a label name: underscores become spaces, white space collapses, and words are
    lower-cased except all-capital ones (acronyms): "Dog bark" -> "dog bark", "TV" stays "TV"."""
    words = label.replace("_", " ").split()
    return " ".join(word if len(word) > 1 and word.isupper() else word.lower() for word in words)


def check_templates(templates: Sequence[str], where: str) -> list[str]:
    """`templates` as a list, or ConfigError naming `where` when it is empty or one lacks `{label}`."""
    if isinstance(templates, str) or not templates:
        raise ConfigError(f"{where}: expected a non-empty list of templates, each containing {LABEL_SLOT}")
    for index, template in enumerate(templates):
        if not isinstance(template, str) or LABEL_SLOT not in template:
            raise ConfigError(f"{where}[{index}]: template {template!r} lacks the {LABEL_SLOT} slot")
    return list(templates)


def label_captions(labels: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Every label written into every template, label by label, without repeats."""
    texts = (template.replace(LABEL_SLOT, label_text(label)) for label in labels for template in templates)
    return list(dict.fromkeys(texts))


def content_groups(clip: Clip, from_labels: bool) -> list[int]:
    """The clip's group keys: its id; its label set when its captions were written from its labels (every
    clip of that class then has the same captions); its event description when it has one."""
    groups = [content_key("clip", clip.id)]
    if from_labels:
        groups.append(content_key("labels", "\n".join(sorted({label_text(label) for label in clip.labels}))))
    if clip.event_description:
        groups.append(content_key("events", clip.event_description))
    return groups


class CaptionPairDataset(Dataset):
    """One item per (epoch, index): the clip's audio (or cached features) and one of its captions.

    The caption choice and the training crop come from a generator seeded by (seed, epoch, index),
    so an item is the same in any worker, process or resumed run. With `caption_templates`, a clip
    without captions is described by its labels through the templates (see the module docstring). With
    `event_share` > 0, that share of the training items of clips with timed events (`Clip.event_captions`)
    is captioned by one event's own caption instead: a scene of three sounds is then also the match of
    each sound's description alone, and such a description, as one of the clip's captions, never counts
    as a negative for another clip that holds the same event.
    """

    def __init__(
        self,
        source: ClipSource,
        frontend: AudioFrontend,
        seed: int,
        train: bool = True,
        cache: EncoderFeatureCache | FeatureCache | None = None,
        caption_templates: Sequence[str] | None = None,
        event_share: float = 0.0,
        sequence_share: float = 0.0,
        sequence_windows: int = 4,
    ) -> None:
        self.source = source
        self.frontend = frontend
        self.seed = seed
        self.train = train
        self.cache = cache
        self.caption_templates = (
            None if caption_templates is None else check_templates(caption_templates, "caption_templates")
        )
        if not 0.0 <= event_share <= 1.0:
            raise ConfigError(f"event_share: expected a share within [0, 1], got {event_share!r}")
        self.event_share = event_share
        if not 0.0 <= sequence_share <= 1.0:
            raise ConfigError(f"sequence_share: expected a share within [0, 1], got {sequence_share!r}")
        if sequence_windows < 2:
            raise ConfigError(f"sequence_windows: expected >= 2, got {sequence_windows}")
        # Sequences need at least two clips.
        self.sequence_share = sequence_share if len(source) >= 2 else 0.0
        self.sequence_windows = sequence_windows

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        rng = np.random.default_rng([self.seed, epoch, index])
        if self.train and self.sequence_share and rng.random() < self.sequence_share:
            return self._sequence_item(index, rng)
        clip, audio = self._clip_audio(index, rng)
        captions, events = self._all_captions(clip)
        caption = self._draw_caption(captions, events, rng) if self.train else captions[0]
        # An event's caption describes its clip too: never a negative for it, whichever row drew it.
        groups = content_groups(clip, from_labels=not clip.captions)
        return {**audio, **_pair_keys(caption, [*captions, *events], groups)}

    def _clip_audio(self, index: int, rng: np.random.Generator) -> tuple[Clip, dict]:
        if self.cache is not None:
            clip = self.source.clip(index)
            return clip, {"features": self.cache.load(self.source, index, clip.id)}
        clip, waveform = self.source.load(index, self.frontend, rng if self.train else None)
        return clip, {"waveform": waveform}

    def _all_captions(self, clip: Clip) -> tuple[list[str], list[str]]:
        """The clip's captions, and (with `event_share`) its events' own captions that are not among them."""
        captions = self._captions(clip)
        events = [text for text in clip.event_captions if text not in captions] if self.event_share else []
        return captions, events

    def _sequence_item(self, index: int, rng: np.random.Generator) -> dict:
        chosen = draw_parts(len(self.source), index, self.sequence_windows, rng)
        parts = [self._clip_audio(part, rng) for part in chosen]
        texts = [self._all_captions(clip) for clip, _ in parts]
        caption = self._draw_caption(*texts[int(rng.integers(len(texts)))], rng)
        described = [text for captions, events in texts for text in (*captions, *events)]
        group = content_key("sequence", "\n".join(clip.id for clip, _ in parts))
        return {"windows": [audio for _, audio in parts], **_pair_keys(caption, described, [group])}

    def _draw_caption(self, captions: list[str], events: list[str], rng: np.random.Generator) -> str:
        """A training item's caption: one of its events' own with probability `event_share`, else one of
        its captions."""
        if events and rng.random() < self.event_share:
            return events[int(rng.integers(len(events)))]
        return captions[int(rng.integers(len(captions)))]

    def _captions(self, clip: Clip) -> list[str]:
        if clip.captions:
            return clip.captions
        if self.caption_templates is None:
            raise DataError(
                f"clip {clip.id!r}: has no captions; stage-1 training needs at least one "
                "(or set data.caption_templates to describe labelled clips by their labels)"
            )
        if not clip.labels:
            raise DataError(
                f"clip {clip.id!r}: has neither captions nor labels; stage-1 training needs one or the other"
            )
        return label_captions(clip.labels, self.caption_templates)


def _pair_keys(caption: str, described: Sequence[str], groups: list[int]) -> dict:
    """An item's caption and its content keys: the caption's, those of every text that describes the
    item's audio, and its groups."""
    return {
        "caption": caption,
        "caption_key": caption_key(caption),
        "clip_caption_keys": list(dict.fromkeys(caption_key(text) for text in described)),
        "content_groups": groups,
    }


def collate_pairs(items: list[dict]) -> dict:
    """Captions and their content keys; the audio as `collate_windows` lays it out."""
    keys = ContentKeys.from_rows(
        [item["caption_key"] for item in items],
        [item["clip_caption_keys"] for item in items],
        [item["content_groups"] for item in items],
    )
    return {
        **collate_windows(items),
        "captions": [item["caption"] for item in items],
        "caption_keys": keys.caption,
        "clip_caption_keys": keys.clip_captions,
        "content_groups": keys.groups,
    }


def collate_windows(items: list[dict]) -> dict:
    """The audio of a batch of items of either stage as `collate_audio` pads it, an item read as several
    windows (`item["windows"]`) as consecutive rows, with `windows` (each item's row count) when any item
    has more than one."""
    parts = [item.get("windows", [item]) for item in items]
    batch: dict = collate_audio([window for windows in parts for window in windows])
    if any(len(windows) > 1 for windows in parts):
        batch["windows"] = [len(windows) for windows in parts]
    return batch


def pair_keys(batch: dict) -> ContentKeys:
    """The content keys of a `collate_pairs` batch (kept as plain tensors there, so that moving the batch to
    a device moves them too)."""
    return ContentKeys(batch["caption_keys"], batch["clip_caption_keys"], batch["content_groups"])


def collate_audio(items: list[dict]) -> dict[str, torch.Tensor]:
    """The audio of a batch of items of either stage: `features` and `feature_mask` when every item
    carries cached `features`, `waveforms` and `lengths` when none does; DataError when they are mixed,
    since the model reads one or the other for the whole batch."""
    cached = sum("features" in item for item in items)
    if items and cached == len(items):
        features, mask = pad_features([item["features"] for item in items])
        return {"features": features, "feature_mask": mask}
    if cached:
        raise DataError(
            f"batch: {cached} of {len(items)} items carry cached features and the others waveforms; "
            "a batch must be all one or all the other"
        )
    waveforms, lengths = pad_batch([item["waveform"] for item in items])
    return {"waveforms": waveforms, "lengths": lengths}


def audio_inputs(batch: dict) -> dict[str, torch.Tensor]:
    """The audio entries of a `collate_audio` batch, as the model's forward takes them."""
    keys = ("features", "feature_mask") if "features" in batch else ("waveforms", "lengths")
    return {key: batch[key] for key in keys}


def pad_features(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack [T_i, D] feature sequences into [B, T_max, D] (float32) with a [B, T_max] validity mask."""
    longest = max(f.shape[0] for f in features)
    out = torch.zeros(len(features), longest, features[0].shape[1], dtype=torch.float32)
    mask = torch.zeros(len(features), longest, dtype=torch.bool)
    for row, feature in enumerate(features):
        out[row, : feature.shape[0]] = feature.float()
        mask[row, : feature.shape[0]] = True
    return out, mask
