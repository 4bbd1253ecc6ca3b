"""Small containers passed between the model, its objectives and the trainer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mint.errors import MintError
from mint.objectives.keys import ContentKeys


class BatchInputError(MintError, TypeError):
    """A batch handed to `MintModel.forward` lacks what its stage needs, or comes with what it does not take."""


@dataclass
class AudioFeatures:
    """Frozen-encoder output after the trainable LayerNorm."""

    features: torch.Tensor  # [B, T, Da]
    mask: torch.Tensor  # [B, T] bool, True = real frame


@dataclass(kw_only=True)
class AudioBatch:
    """The audio of a training batch: `waveforms` [B, N] with `lengths` [B] (samples), or the frozen
    encoder's cached `features` [B, T, Da] with `feature_mask` [B, T] (what `audio_inputs` of a collated
    batch gives)."""

    waveforms: torch.Tensor | None = None
    lengths: torch.Tensor | None = None
    features: torch.Tensor | None = None
    feature_mask: torch.Tensor | None = None


@dataclass(kw_only=True)
class Stage1Batch(AudioBatch):
    """A stage-1 step's input: clips, their tokenised captions (row i describes clip i), the content keys
    that say which pairs match, and the generator that draws the hard negatives. `windows`: how many
    consecutive audio rows each item is read as (None: one clip each)."""

    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    keys: ContentKeys
    generator: torch.Generator
    windows: Sequence[int] | None = None


@dataclass(kw_only=True)
class InstructBatch(AudioBatch):
    """A stage-2 step's input: items with one instruction and its response each. `windows`: how many
    consecutive audio rows each item is read as (None: one clip each)."""

    instructions: Sequence[str]
    responses: Sequence[str]
    windows: Sequence[int] | None = None


@dataclass
class QueryPass:
    """The queries read from the audio with no text in view (ATC's pass).

    `states[l]` holds the query positions' input to layer l, whose self-attention projects it to the
    keys and values that text positions attend to; a text pass that reads them (ATG) needs no second
    query pass.
    """

    output: torch.Tensor  # [B, Nq, H]
    states: list[torch.Tensor]  # num_layers x [B, Nq, H]

    def rows(self, index: torch.Tensor) -> QueryPass:
        """The pass of the audio rows `index` alone (a row may be taken more than once)."""
        return QueryPass(self.output[index], [state[index] for state in self.states])


@dataclass
class InstructOutput:
    loss: torch.Tensor  # mean negative log-likelihood of the response tokens (+ end-of-sequence)
