"""Inference on audio of any length: the model's windows (`model.windowing`, `mint.audio.windows`) read one
batch at a time, so memory holds one batch of windows whatever the recording's length.

* `window_embeddings`: each window's audio embeddings `[Nq, E]` with its time span; a text's similarity
  to the recording is the best window's (`locate` ranks the windows).
* `long_prompt`: one soft prompt for the LLM. Each window's instruction-aware queries go through
  `llm_proj`; in time order they are concatenated while they fit `prompt_budget` tokens, and beyond it
  averaged over runs of consecutive windows, as many runs as windows fit the budget (running sums, so
  the prompt never holds more than the budget). A question (`focus`, its ATC text embedding) instead
  reads the `question_windows` windows most similar to it, each whole and in time order: averaging 94
  windows of an hour into one slot would bury a sound heard in only one of them. Each slot (window or
  run) gets the learned window-position embedding of its place in the prompt, as stage 2's `sequence`
  items train it.
* `distinct_windows`: the windows that differ most from a recording's typical one, for a timeline of
  captions (`MintPipeline.caption_segments`): each is captioned on its own, as the model was trained,
  and its time is the window's span.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mint.audio.frontend import AudioReader
from mint.audio.windows import Window, plan_windows, window_sizes
from mint.modeling import MintModel
from mint.modeling.instruct import add_positions, window_prompts
from mint.modeling.outputs import AudioFeatures

Encode = Callable[[Sequence[np.ndarray]], AudioFeatures]


@dataclass(frozen=True)
class WindowEmbeddings:
    """Per-window audio embeddings `[W, Nq, E]` of one recording and each window's span in seconds."""

    starts: np.ndarray  # [W]
    ends: np.ndarray  # [W]
    embeddings: np.ndarray


@dataclass(frozen=True)
class WindowScore:
    start: float  # seconds
    end: float
    similarity: float  # ATC: the best query's dot product with the text


@dataclass(frozen=True)
class CaptionSegment:
    start: float  # seconds
    end: float
    text: str


def recording_windows(
    model: MintModel, reader: AudioReader, window: int, overlap: float | None = None
) -> list[Window]:
    """The windows of `reader`'s recording for a model whose clips are `window` samples long, overlapping by
    `overlap` (default the model's `windowing.overlap`)."""
    overlap = model.config.windowing.overlap if overlap is None else overlap
    window, hop = window_sizes(window, overlap)
    return plan_windows(reader.total, window, hop, reader.frontend.sample_rate)


def _batches(
    reader: AudioReader, windows: list[Window], batch_size: int, encode: Encode
) -> Iterator[tuple[list[Window], AudioFeatures]]:
    for start in range(0, len(windows), batch_size):
        part = windows[start : start + batch_size]
        yield part, encode([reader.read(window.start, window.length) for window in part])


@torch.no_grad()
def window_embeddings(
    model: MintModel,
    reader: AudioReader,
    window: int,
    batch_size: int,
    encode: Encode,
    overlap: float | None = None,
) -> WindowEmbeddings:
    windows = recording_windows(model, reader, window, overlap)
    embeddings = [
        model.audio_embeddings(audio).float().cpu().numpy()
        for _, audio in _batches(reader, windows, batch_size, encode)
    ]
    return WindowEmbeddings(
        np.array([w.start_seconds for w in windows]),
        np.array([w.end_seconds for w in windows]),
        np.concatenate(embeddings),
    )


def window_similarity(windows: WindowEmbeddings, texts: np.ndarray) -> np.ndarray:
    """Each window's ATC similarity (its best query's dot product) to text embeddings: `[W]` for one text
    `[E]`, `[W, T]` for `[T, E]`."""
    return (windows.embeddings @ np.asarray(texts, dtype=np.float32).T).max(axis=1)


def locate(windows: WindowEmbeddings, text: np.ndarray) -> list[WindowScore]:
    """Each window's ATC similarity to one text embedding `[E]`, in time order."""
    similarity = window_similarity(windows, text)
    return [
        WindowScore(float(start), float(end), float(value))
        for start, end, value in zip(windows.starts, windows.ends, similarity, strict=True)
    ]


def prompt_runs(windows: int, num_queries: int, budget: int) -> list[int]:
    """The run (soft-prompt slot) of each window: one each while they fit `budget` tokens of `num_queries`,
    else consecutive windows shared out as evenly as possible over the runs that fit (at least one)."""
    runs = max(1, min(windows, budget // num_queries))
    return [index * runs // windows for index in range(windows)]


def distinct_windows(windows: WindowEmbeddings, count: int) -> np.ndarray:
    """Indices, in time order, of up to `count` windows, none overlapping another, that differ most from
    the recording's typical window (cosine distance of each window's mean audio embedding from the
    normalised median of them all): where something happens in a recording that is mostly background."""
    means = windows.embeddings.mean(axis=1)
    means = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    typical = np.median(means, axis=0)
    typical = typical / max(float(np.linalg.norm(typical)), 1e-12)
    chosen: list[int] = []
    for index in np.argsort(-(1.0 - means @ typical), kind="stable"):
        if len(chosen) == count:
            break
        start, end = windows.starts[index], windows.ends[index]
        if all(end <= windows.starts[other] or windows.ends[other] <= start for other in chosen):
            chosen.append(int(index))
    return np.sort(np.array(chosen, dtype=np.int64))


def focus_windows(windows: WindowEmbeddings, text: np.ndarray, count: int) -> np.ndarray:
    """Indices, in time order, of the `count` windows most similar (ATC) to one text embedding `[E]`."""
    return np.sort(np.argsort(-window_similarity(windows, text), kind="stable")[:count])


@torch.no_grad()
def long_prompt(
    model: MintModel,
    reader: AudioReader,
    window: int,
    instruction: str,
    batch_size: int,
    encode: Encode,
    embeddings: Callable[[], WindowEmbeddings],
    focus: np.ndarray | None = None,
) -> torch.Tensor:
    """The soft prompt `[1, T, D_llm]` of a recording of any length (see the module doc); `embeddings`: the
    recording's window embeddings (`window_embeddings` of `reader`, or a kept copy), called only when
    `focus`, the question's text embedding `[E]`, has to pick among more windows than it reads."""
    windows = recording_windows(model, reader, window)
    windowing = model.config.windowing
    if focus is not None and len(windows) > windowing.question_windows:
        picked = focus_windows(embeddings(), focus, windowing.question_windows)
        windows = [windows[index] for index in picked]
        run_of = torch.arange(len(windows))
    else:
        run_of = torch.tensor(
            prompt_runs(len(windows), model.config.bridge.num_queries, windowing.prompt_budget)
        )
    runs = int(run_of.max()) + 1
    sums: torch.Tensor | None = None
    counts = torch.zeros(runs)
    done, dtype = 0, torch.float32
    for part, audio in _batches(reader, windows, batch_size, encode):
        prompts = window_prompts(model, audio, [instruction] * len(part))
        dtype, prompts = prompts.dtype, prompts.float()
        if sums is None:
            sums = prompts.new_zeros(runs, *prompts.shape[1:])
        index = run_of[done : done + len(part)]
        sums.index_add_(0, index.to(sums.device), prompts)
        counts.index_add_(0, index, torch.ones(len(part)))
        done += len(part)
    prompt = add_positions(model, sums / counts.to(sums.device)[:, None, None], torch.arange(runs))
    return prompt.reshape(1, -1, prompt.shape[-1]).to(dtype)
