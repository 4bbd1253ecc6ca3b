"""`MintPipeline`: a saved model behind one object that takes audio as files, bytes or arrays.

Every method takes one clip or a list of clips (see `mint.inference.inputs`) and works in batches of
`batch_size`; a single clip gives a single result, a list a list. Audio goes through the model's own
front end (its encoder's sample rate, cropped to `max_audio_seconds` from the start, as in evaluation),
except where a method says it reads audio of any length window by window (`model.windowing`).

* `caption`, `ask`: LLM generation with the fixed stage-2 instructions (stage-2 models only); a recording
  longer than the model's clip is read window by window into one soft prompt (`mint.inference.long_audio`).
* `embed_windows`, `locate`: a recording of any length as windows with time spans, and where in it a
  text is heard. The window embeddings of the last file read this way are kept (keyed by its path, inode,
  size and modification time, and the overlap and batch size), so further questions, searches or
  timelines of one long recording do not run the encoder over all of it again.
* `classify`: zero-shot, by ATC prompt ensembles (any model) or by the LLM's log-likelihood of each
  label as its answer (stage-2 models); `method="auto"` takes the LLM when there is one.
* `embed_audio`: the L2-normalised per-query embeddings `[N, Nq, E]` that ATC compares with a text by
  the best query; `pooled=True` gives `[N, E]`, the re-normalised mean over queries, for stores that
  keep one vector per item (an approximation: the model never trained that vector).
* `embed_text`: `[T, E]` L2-normalised.
* `search`: the clips of an `AudioIndex` nearest to a text or an example clip.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mint.audio.frontend import AudioReader, pad_batch
from mint.data.instructions import evaluation_instruction
from mint.data.pairs import label_text
from mint.errors import ConfigError
from mint.inference.embedding import (
    DEFAULT_TEMPLATES,
    class_embeddings,
    embed_texts,
    eval_frontend,
    load_model,
    resolve_device,
)
from mint.inference.index import AudioIndex, model_fingerprint
from mint.inference.inputs import AudioInput, as_batch, chunks, load_clip, open_reader
from mint.inference.long_audio import (
    CaptionSegment,
    WindowEmbeddings,
    WindowScore,
    distinct_windows,
    locate,
    long_prompt,
    window_embeddings,
)
from mint.inference.search import DEFAULT_CANDIDATES, SearchHit, search_index
from mint.modeling import MintModel
from mint.modeling.instruct import require_llm
from mint.modeling.outputs import AudioFeatures
from mint.objectives.contrastive import audio_text_similarity
from mint.objectives.matching import match_log_odds

CLASSIFY_METHODS = ("auto", "atc", "generative")
DEFAULT_GENERATION: dict[str, Any] = {"max_new_tokens": 30, "num_beams": 1}
TEXT_BATCH = 64


@dataclass
class Classification:
    """Labels best first, with their scores (ATC similarity or LLM log-likelihood) and the softmax of
    those scores over the given labels (ATC: at the model's trained temperature)."""

    labels: list[str]
    scores: list[float]
    probabilities: list[float]
    method: str

    @property
    def label(self) -> str:
        return self.labels[0]


def _unwrap(results: list, single: bool) -> Any:
    return results[0] if single else results


def check_labels(labels: Sequence[str]) -> list[str]:
    if isinstance(labels, str):
        raise ConfigError(f"labels: expected a list of label names, got the string {labels!r}")
    cleaned = [label.strip() if isinstance(label, str) else label for label in labels]
    if any(not isinstance(label, str) or not label for label in cleaned):
        raise ConfigError(f"labels: expected non-empty strings, got {list(labels)!r}")
    if len(cleaned) < 2 or len(set(cleaned)) != len(cleaned):
        raise ConfigError(f"labels: expected two or more distinct labels, got {cleaned!r}")
    return cleaned


class MintPipeline:
    """Inference with a `MintModel` (put in eval mode, kept on its device). Not thread-safe: callers that
    share one pipeline between threads serialise their calls (the server does)."""

    def __init__(self, model: MintModel, batch_size: int = 8) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size: expected a positive integer, got {batch_size}")
        self.model = model.eval()
        self.batch_size = batch_size
        self.frontend = eval_frontend(model)
        self._fingerprint: str | None = None
        self._last_windows: tuple[tuple, WindowEmbeddings] | None = None

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike, device: str = "auto", batch_size: int = 8
    ) -> MintPipeline:
        """Load a saved model; `device="auto"` is the first CUDA device when there is one, else the CPU."""
        return cls(load_model(directory, resolve_device(device)), batch_size)

    @property
    def device(self) -> torch.device:
        return self.model.audio_proj.weight.device

    @property
    def has_llm(self) -> bool:
        return self.model.llm is not None

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the model's config and own weights: what an index's embeddings belong to."""
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.model)
        return self._fingerprint

    @property
    def rerank_weight(self) -> float:
        """w of the re-ranking score ATC similarity + w x ATM log-odds (the model's calibrated weight)."""
        return self.model.rerank_weight

    # ----- audio ---------------------------------------------------------------------------------

    def load_audio(
        self, audio: AudioInput | list[AudioInput], sample_rate: int | None = None
    ) -> list[np.ndarray]:
        """Each clip as the model takes it: `[N]` float32 at `self.sample_rate`, cropped."""
        batch = as_batch(audio)
        return [
            load_clip(item, self.frontend, sample_rate, self._name(index, batch.single))
            for index, item in enumerate(batch.items)
        ]

    def load_recording(self, audio: AudioInput, sample_rate: int | None = None) -> np.ndarray:
        """One input whole, of any length, at the model's rate: `[N]` float32 (what `caption` and `ask`
        then read window by window when it is longer than the model's clip)."""
        reader = open_reader(audio, self.frontend, sample_rate)
        return reader.read(0, reader.total)

    def load_window(
        self, audio: AudioInput, start: float, end: float, sample_rate: int | None = None
    ) -> np.ndarray:
        """Seconds `[start, end)` of one input of any length, as the model's front end reads it."""
        return open_reader(audio, self.frontend, sample_rate).read_seconds(start, end)

    @staticmethod
    def _name(index: int, single: bool) -> str:
        return "audio" if single else f"audio[{index}]"

    @torch.no_grad()
    def encode(self, waveforms: Sequence[np.ndarray]) -> AudioFeatures:
        """Encoder features (after the model's LayerNorm) of decoded clips, zero-padded into one batch."""
        batch, lengths = pad_batch(list(waveforms))
        return self.model.encode_audio(batch.to(self.device), lengths.to(self.device))

    def _encoded(
        self, items: Sequence[AudioInput], sample_rate: int | None, single: bool
    ) -> Iterator[tuple[int, AudioFeatures]]:
        """(offset of the first clip, features) per batch; clips are decoded a batch at a time."""
        for start, part in chunks(items, self.batch_size):
            waveforms = [
                load_clip(item, self.frontend, sample_rate, self._name(start + offset, single))
                for offset, item in enumerate(part)
            ]
            yield start, self.encode(waveforms)

    # ----- stage 2: the LLM ----------------------------------------------------------------------

    def _require_llm(self, what: str) -> None:
        if not self.has_llm:
            raise ConfigError(f"{what}: the model is a stage-1 model (no LLM); this needs a stage-2 model")

    @torch.no_grad()
    def _generate(
        self,
        items: list[AudioInput],
        instructions: list[str],
        sample_rate: int | None,
        single: bool,
        focus: Sequence[str] | None = None,
        **kw,
    ) -> list[str]:
        """Clips within the model's clip length are generated for in batches; a longer recording alone,
        from its windows (`mint.inference.long_audio.long_prompt`), chosen by similarity to its `focus`
        text (a question) when there are more than fit the prompt."""
        settings = DEFAULT_GENERATION | kw
        readers = [
            open_reader(item, self.frontend, sample_rate, self._name(index, single))
            for index, item in enumerate(items)
        ]
        texts: dict[int, str] = {}
        short = [index for index, reader in enumerate(readers) if reader.total <= self.frontend.max_samples]
        for start in range(0, len(short), self.batch_size):
            part = short[start : start + self.batch_size]
            audio = self.encode([readers[index].read(0, readers[index].total) for index in part])
            texts.update(
                zip(
                    part, self.model.generate(audio, [instructions[i] for i in part], **settings), strict=True
                )
            )
        llm = require_llm(self.model)
        for index, reader in enumerate(readers):
            if index not in texts:
                prompt = long_prompt(
                    self.model,
                    reader,
                    self.frontend.max_samples,
                    instructions[index],
                    self.batch_size,
                    self.encode,
                    functools.partial(self._windows, items[index], reader),
                    None if focus is None else self.embed_text(focus[index])[0],
                )
                texts[index] = llm.generate(prompt, [instructions[index]], **settings)[0]
        return [texts[index] for index in range(len(items))]

    def caption(
        self,
        audio: AudioInput | list[AudioInput],
        instruction: str | None = None,
        sample_rate: int | None = None,
        **generation: Any,
    ) -> str | list[str]:
        """One caption per clip. `generation`: the keyword arguments of `MintModel.generate`
        (defaults `DEFAULT_GENERATION`)."""
        self._require_llm("caption")
        batch = as_batch(audio)
        instruction = instruction or evaluation_instruction("caption")
        instructions = [instruction] * len(batch.items)
        return _unwrap(
            self._generate(batch.items, instructions, sample_rate, batch.single, **generation), batch.single
        )

    def caption_segments(
        self,
        audio: AudioInput,
        count: int | None = None,
        instruction: str | None = None,
        sample_rate: int | None = None,
        **generation: Any,
    ) -> list[CaptionSegment]:
        """A timeline of one recording of any length: the `count` windows (default: as many as the prompt
        budget holds) that differ most from its typical window (`long_audio.distinct_windows`), each
        captioned on its own, in time order; a recording within one window is one segment."""
        self._require_llm("caption")
        slots = self.model.config.windowing.prompt_budget // self.model.config.bridge.num_queries
        count = max(1, slots) if count is None else count
        if count < 1:
            raise ConfigError(f"count: expected a positive number of segments, got {count!r}")
        reader = open_reader(audio, self.frontend, sample_rate)
        windows = self._windows(audio, reader)
        chosen = distinct_windows(windows, count)
        spans = [(float(windows.starts[index]), float(windows.ends[index])) for index in chosen]
        # Each chosen window is within one clip: `caption` takes the plain path, in batches.
        clips = [reader.read_seconds(start, end) for start, end in spans]
        texts = self.caption(clips, instruction, sample_rate=self.sample_rate, **generation)
        return [CaptionSegment(start, end, text) for (start, end), text in zip(spans, texts, strict=True)]

    def ask(
        self,
        audio: AudioInput | list[AudioInput],
        question: str | Sequence[str],
        sample_rate: int | None = None,
        **generation: Any,
    ) -> str | list[str]:
        """The answer to `question` (one shared by every clip, or one per clip) about each clip; in a
        recording longer than the prompt holds, about the windows most similar to the question."""
        self._require_llm("ask")
        batch = as_batch(audio)
        questions = [question] * len(batch.items) if isinstance(question, str) else list(question)
        if len(questions) != len(batch.items):
            raise ConfigError(f"question: {len(questions)} questions for {len(batch.items)} clips")
        if not all(isinstance(text, str) and text.strip() for text in questions):
            raise ConfigError(f"question: expected non-empty text, got {question!r}")
        questions = [text.strip() for text in questions]
        instructions = [evaluation_instruction("qa", question=text) for text in questions]
        return _unwrap(
            self._generate(batch.items, instructions, sample_rate, batch.single, questions, **generation),
            batch.single,
        )

    # ----- classification ------------------------------------------------------------------------

    @torch.no_grad()
    def classify(
        self,
        audio: AudioInput | list[AudioInput],
        labels: Sequence[str],
        method: str = "auto",
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        instruction: str | None = None,
        normalise: bool = False,
        sample_rate: int | None = None,
    ) -> Classification | list[Classification]:
        """Zero-shot classification over `labels`. `method`: "atc" (prompt `templates` per label, the
        model's ATC similarity), "generative" (the LLM's log-likelihood of each label as its answer to
        `instruction`; `normalise` divides by its token count) or "auto" (generative when the model has
        an LLM, else ATC)."""
        if method not in CLASSIFY_METHODS:
            raise ConfigError(f"method: expected one of {CLASSIFY_METHODS}, got {method!r}")
        labels = check_labels(labels)
        if method == "auto":
            method = "generative" if self.has_llm else "atc"
        batch = as_batch(audio)
        if method == "generative":
            self._require_llm("classify (method generative)")
            scores = self._generative_scores(
                batch.items, labels, instruction, normalise, sample_rate, batch.single
            )
            probabilities = torch.softmax(scores.double(), dim=1)
        else:
            classes = class_embeddings(self.model, labels, list(templates)).to(self.device)
            parts = [
                audio_text_similarity(self.model.audio_embeddings(features), classes).float().cpu()
                for _, features in self._encoded(batch.items, sample_rate, batch.single)
            ]
            scores = torch.cat(parts)
            probabilities = torch.softmax(scores.double() / float(self.model.temperature()), dim=1)
        results = []
        for row, chances in zip(scores.tolist(), probabilities.tolist(), strict=True):
            order = sorted(range(len(labels)), key=lambda column: (-row[column], column))
            results.append(
                Classification(
                    labels=[labels[column] for column in order],
                    scores=[row[column] for column in order],
                    probabilities=[chances[column] for column in order],
                    method=method,
                )
            )
        return _unwrap(results, batch.single)

    def _generative_scores(
        self,
        items: list[AudioInput],
        labels: list[str],
        instruction: str | None,
        normalise: bool,
        sample_rate: int | None,
        single: bool,
    ) -> torch.Tensor:
        instruction = instruction or evaluation_instruction("classify")
        candidates = [label_text(label) for label in labels]
        parts = []
        for _, audio in self._encoded(items, sample_rate, single):
            instructions = [instruction] * audio.features.shape[0]
            parts.append(self.model.score(audio, instructions, candidates, normalise=normalise).float().cpu())
        return torch.cat(parts)

    # ----- embeddings and search -----------------------------------------------------------------

    @torch.no_grad()
    def embed_audio(
        self, audio: AudioInput | list[AudioInput], pooled: bool = False, sample_rate: int | None = None
    ) -> np.ndarray:
        """float32 `[N, Nq, E]` per-query embeddings (N = 1 for a single clip), or `[N, E]` when pooled."""
        batch = as_batch(audio)
        parts = [
            self.model.audio_embeddings(features).float().cpu()
            for _, features in self._encoded(batch.items, sample_rate, batch.single)
        ]
        embeddings = torch.cat(parts)
        if pooled:
            embeddings = torch.nn.functional.normalize(embeddings.mean(dim=1), dim=-1)
        return embeddings.numpy()

    def embed_text(self, texts: str | Sequence[str]) -> np.ndarray:
        """float32 `[T, E]` L2-normalised text embeddings (T = 1 for a single string)."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or not all(isinstance(text, str) for text in texts):
            raise ConfigError(f"texts: expected a string or a non-empty list of strings, got {texts!r}")
        return embed_texts(self.model, texts, TEXT_BATCH).numpy()

    def embed_windows(
        self, audio: AudioInput, sample_rate: int | None = None, overlap: float | None = None
    ) -> WindowEmbeddings:
        """One recording of any length as windows of the model's clip length: each window's audio embeddings
        `[Nq, E]` and time span, read a batch of windows at a time. `overlap`: the fraction of a window
        shared with the next (default the model's `windowing.overlap`); more places time more finely
        (`mint.evaluation.temporal`) at the cost of more windows."""
        if overlap is not None and not 0 <= overlap < 1:
            raise ConfigError(f"overlap: expected a fraction in [0, 1), got {overlap!r}")
        return self._windows(audio, open_reader(audio, self.frontend, sample_rate), overlap)

    def _windows(
        self, audio: AudioInput, reader: AudioReader, overlap: float | None = None
    ) -> WindowEmbeddings:
        """`reader`'s window embeddings; a file's are kept until another file's are computed."""
        key = None
        if isinstance(audio, (str, os.PathLike)):
            status = os.stat(audio)
            overlap = self.model.config.windowing.overlap if overlap is None else overlap
            key = (
                os.path.realpath(audio),
                status.st_ino,
                status.st_size,
                status.st_mtime_ns,
                overlap,
                self.batch_size,
            )
        if key is not None and self._last_windows is not None and self._last_windows[0] == key:
            return self._last_windows[1]
        windows = window_embeddings(
            self.model, reader, self.frontend.max_samples, self.batch_size, self.encode, overlap
        )
        if key is not None:
            for array in (windows.starts, windows.ends, windows.embeddings):
                array.flags.writeable = False  # shared by every later call about the file
            self._last_windows = (key, windows)
        return windows

    def locate(self, audio: AudioInput, text: str, sample_rate: int | None = None) -> list[WindowScore]:
        """Where in a recording of any length `text` is heard: each window's ATC similarity to it, in time
        order (the best window is the answer; `max(scores, key=lambda w: w.similarity)`)."""
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"text: expected a non-empty string, got {text!r}")
        return locate(self.embed_windows(audio, sample_rate), self.embed_text(text)[0])

    @torch.no_grad()
    def match_scores(self, audio: AudioFeatures, text: str) -> np.ndarray:
        """ATM log-odds (logit[match] - logit[no match]) of each clip of `audio` with `text`."""
        ids, mask = self.model.tokenize([text] * audio.features.shape[0], device=self.device)
        logits = self.model.match_logits(audio, ids, mask).float()
        return match_log_odds(logits).cpu().numpy().astype(np.float64)

    def search(
        self,
        query: str | AudioInput,
        index: AudioIndex | str | os.PathLike,
        k: int = 10,
        rerank: int = 32,
        sample_rate: int | None = None,
        candidates: int = DEFAULT_CANDIDATES,
    ) -> list[SearchHit]:
        """The `k` clips of `index` nearest to `query`: a `str` is a text query, anything else one example
        clip (pass a path as `pathlib.Path`). See `mint.inference.search.search_index`."""
        if not isinstance(index, AudioIndex):
            with AudioIndex.open(index) as opened:
                return self.search(query, opened, k, rerank, sample_rate, candidates)
        return search_index(
            self, index, query, k=k, rerank=rerank, sample_rate=sample_rate, candidates=candidates
        )
