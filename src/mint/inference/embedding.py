"""A saved model's embeddings, shared by inference and the evaluation runners: loading it, streaming clips'
audio through it batch by batch, and embedding texts (captions, class prompts).

Audio is decoded through the front end with the deterministic (evaluation) crop, a bounded number of
clips ahead of the model, so memory holds a few batches of waveforms and never the whole set. A clip
whose audio cannot be read is skipped and reported, not fatal. What a runner keeps from a batch (the
audio embeddings [B, Nq, E], scores, generated text) is its own choice.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mint.audio.frontend import AudioFrontend, FrontendConfig, pad_batch
from mint.data.manifest import ManifestRecord
from mint.data.pairs import LABEL_SLOT, label_text
from mint.errors import ConfigError, DataError, MintError
from mint.modeling import MintModel
from mint.modeling.outputs import AudioFeatures

UNREADABLE_AUDIO = "unreadable audio"
# Zero-shot classification's prompts: each label is written into each template, and a class is the mean
# of its prompts' text embeddings.
DEFAULT_TEMPLATES = (
    "the sound of a {label}",
    "a recording of {label}",
    "a sound of {label}",
    "an audio clip of {label}",
    "this is the sound of {label}",
    "{label} can be heard",
    "a {label} sound",
)


@dataclass
class SkippedClip:
    """A clip left out of an evaluation: `reason` is a short category, `detail` the specific message."""

    id: str
    audio: str
    reason: str
    detail: str = ""


def resolve_device(name: str) -> torch.device:
    """`auto` is the first CUDA device when there is one, else the CPU; anything else as torch names it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"device: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} asked for, but torch sees no CUDA device")
    return device


def eval_frontend(model: MintModel) -> AudioFrontend:
    """The front end the model was trained with, at its encoder's rate and clip length."""
    return AudioFrontend(
        FrontendConfig(sample_rate=model.sample_rate, max_seconds=model.config.max_audio_seconds)
    )


@dataclass
class AudioBatch:
    """`indices` are positions in the record list; `audio` the model's normalised encoder output; `seconds`
    each clip's length as decoded (cropped to the model's clip length)."""

    indices: list[int]
    audio: AudioFeatures
    seconds: list[float]


class AudioStream:
    """Iterates once over `records` in order as `AudioBatch`es of up to `batch_size` readable clips.

    Decoding runs on `workers` threads (0: inline), at most two batches ahead. Clips that cannot be
    read end up in `skipped` (filled while iterating).
    """

    def __init__(
        self,
        model: MintModel,
        records: Sequence[ManifestRecord],
        batch_size: int = 16,
        workers: int = 2,
        progress: bool = True,
        desc: str = "audio",
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size: expected a positive integer, got {batch_size}")
        if workers < 0:
            raise ConfigError(f"workers: expected 0 or more decoding threads, got {workers}")
        self.model = model
        self.records = records
        self.batch_size = batch_size
        self.workers = workers
        self.progress = progress
        self.desc = desc
        self.skipped: list[SkippedClip] = []

    def _decoded(self, frontend: AudioFrontend) -> Iterator[tuple[int, np.ndarray | MintError | OSError]]:
        def load(index: int) -> np.ndarray | MintError | OSError:
            try:
                return frontend.load(self.records[index].audio)
            except (MintError, OSError) as error:
                return error

        if self.workers == 0:
            for index in range(len(self.records)):
                yield index, load(index)
            return
        ahead = 2 * self.batch_size
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            pending: deque[tuple[int, Future]] = deque()
            next_index = 0
            while pending or next_index < len(self.records):
                while next_index < len(self.records) and len(pending) < ahead:
                    pending.append((next_index, pool.submit(load, next_index)))
                    next_index += 1
                index, future = pending.popleft()
                yield index, future.result()

    def _encode(self, indices: list[int], waveforms: list[np.ndarray]) -> AudioBatch:
        device = self.model.audio_proj.weight.device
        batch, lengths = pad_batch(waveforms)
        seconds = [length / self.model.sample_rate for length in lengths.tolist()]
        return AudioBatch(indices, self.model.encode_audio(batch.to(device), lengths.to(device)), seconds)

    def __iter__(self) -> Iterator[AudioBatch]:
        frontend = eval_frontend(self.model)
        indices: list[int] = []
        waveforms: list[np.ndarray] = []
        with tqdm(total=len(self.records), desc=self.desc, unit="clip", disable=not self.progress) as bar:
            for index, loaded in self._decoded(frontend):
                bar.update()
                if not isinstance(loaded, np.ndarray):
                    record = self.records[index]
                    self.skipped.append(SkippedClip(record.id, record.audio, UNREADABLE_AUDIO, str(loaded)))
                    continue
                indices.append(index)
                waveforms.append(loaded)
                if len(indices) == self.batch_size:
                    yield self._encode(indices, waveforms)
                    indices, waveforms = [], []
            if indices:
                yield self._encode(indices, waveforms)


@dataclass
class AudioEmbeddings:
    """`embeddings` [N, Nq, E] (CPU, float32) of the readable clips, whose record positions are `indices`."""

    embeddings: torch.Tensor
    indices: list[int]
    skipped: list[SkippedClip]


@torch.no_grad()
def embed_audio(stream: AudioStream) -> AudioEmbeddings:
    """One pass of `stream`, keeping only each clip's L2-normalised query embeddings."""
    chunks: list[torch.Tensor] = []
    indices: list[int] = []
    for batch in stream:
        chunks.append(stream.model.audio_embeddings(batch.audio).float().cpu())
        indices.extend(batch.indices)
    if not chunks:
        raise DataError(f"no readable audio among the {len(stream.records)} clips (see the skipped list)")
    return AudioEmbeddings(torch.cat(chunks), indices, stream.skipped)


@torch.no_grad()
def embed_texts(model: MintModel, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """L2-normalised text embeddings [T, E] (CPU, float32), `batch_size` texts at a time."""
    if batch_size < 1:
        raise ConfigError(f"text batch size: expected a positive integer, got {batch_size}")
    chunks = []
    for start in range(0, len(texts), batch_size):
        ids, mask = model.tokenize(list(texts[start : start + batch_size]))
        chunks.append(model.text_embeddings(ids, mask).float().cpu())
    if not chunks:
        raise DataError("no texts to embed")
    return torch.cat(chunks)


def prompt_texts(labels: list[str], templates: list[str]) -> list[str]:
    """Every label written into every template, label by label: C x T texts (repeats kept, so that they
    reshape to [C, T])."""
    return [template.replace(LABEL_SLOT, label_text(label)) for label in labels for template in templates]


@torch.no_grad()
def class_embeddings(
    model: MintModel, labels: list[str], templates: list[str], batch_size: int = 64
) -> torch.Tensor:
    """[C, E]: per label, the re-normalised mean of its templates' normalised text embeddings."""
    embeddings = embed_texts(model, prompt_texts(labels, templates), batch_size).view(
        len(labels), len(templates), -1
    )
    return F.normalize(embeddings.mean(dim=1), dim=-1)


def load_model(model_dir: str | os.PathLike, device: torch.device) -> MintModel:
    """A saved model on `device`, in eval mode (no dropout: evaluation is deterministic)."""
    model = MintModel.from_pretrained(model_dir)
    return model.to(device).eval()
