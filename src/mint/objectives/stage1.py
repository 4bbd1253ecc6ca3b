"""Stage 1 as one objective: ATC + ATM + ATG for a batch, from a model that computes features and logits.

`Stage1Objective` owns what the losses need beyond the model: the content keys that say which pairs
match, gathering across processes, hard negatives and the loss weights. It is told its rank and world
size, so one process can run it (world size 1) and a distributed run builds it from
`mint.distributed.world_info()` at each step.

Hard negatives are drawn over the *global* batch with the step's generator, identical on every process,
and each process keeps its own rows: N processes draw exactly the negatives one process draws for the
same global batch. ATG reads the query states of the contrastive pass (the reference BLIP-2 recipe's
query key/value cache): the queries see only queries in both passes, so running them again would
compute the same states.

An item may be read as several windows (`windows`: how many consecutive audio rows each item has), as a
recording longer than the model's clip length is at inference. Its ATC similarity to a caption is then the
best over its windows' queries, as retrieval scores a long recording by its best window, and ATM and ATG
read, for each caption, the item's window most similar to it: a caption that names one sound of a
recording is trained against the window that holds it, not against windows it does not describe.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from mint.distributed import gather_no_grad, gather_with_grad, global_token_share
from mint.errors import ConfigError
from mint.objectives._checks import ObjectiveInputError
from mint.objectives.contrastive import ContrastiveLoss
from mint.objectives.generation import next_token_targets, prepare_generation_inputs, target_loss
from mint.objectives.keys import ContentKeys, ContentMatches, content_matches
from mint.objectives.matching import HardNegatives, NegativeSampling, matching_loss, sample_hard_negatives


@dataclass(frozen=True)
class ObjectiveWeights:
    """Weights of the three stage-1 losses in their sum (`objectives.*` in a stage-1 config)."""

    atc: float = 1.0
    atm: float = 1.0
    atg: float = 1.0

    def __post_init__(self) -> None:
        for name in ("atc", "atm", "atg"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"objectives.{name}: expected a finite weight >= 0, got {value}")


@dataclass
class Stage1Losses:
    loss: torch.Tensor  # weighted sum of the three objectives
    loss_atc: torch.Tensor
    loss_atm: torch.Tensor
    loss_atg: torch.Tensor
    temperature: torch.Tensor


class Stage1Model(Protocol):
    """What the objective asks of a model (`MintModel`): features and logits, never a loss.

    `audio` is the model's normalised encoder output (with `.features` [B, T, D] and `.mask` [B, T]);
    `queries` is whatever `query_pass` returns, handed back unchanged or as `queries.rows(index)`, the
    pass of those audio rows alone.
    """

    decoder_start_token_id: int
    pad_token_id: int

    def temperature(self) -> torch.Tensor: ...

    def query_pass(self, audio: Any) -> Any: ...

    def query_embeddings(self, queries: Any) -> torch.Tensor: ...

    def text_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor: ...

    def match_logits(
        self, audio: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor: ...

    def generation_logits(
        self,
        queries: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        at: torch.Tensor | None = None,
    ) -> torch.Tensor: ...


def gather_padded(features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All-gather [B, T, D] features (with gradients) and masks whose T may differ across processes."""
    longest = int(gather_no_grad(torch.tensor([features.shape[1]], device=features.device)).max())
    pad = longest - features.shape[1]
    if pad:
        features = F.pad(features, (0, 0, 0, pad))
        mask = F.pad(mask, (0, pad), value=False)
    return gather_with_grad(features), gather_no_grad(mask)


def window_slots(windows: Sequence[int] | None, rows: int, device: torch.device) -> torch.Tensor:
    """[B, K]: the audio row of each item's k-th window, K the most windows of any item in the global batch
    (`windows`: each item's number of consecutive rows; None: one row each). An item with fewer windows
    repeats its last one, which leaves a best-over-windows similarity unchanged."""
    counts = [1] * rows if windows is None else [int(count) for count in windows]
    if min(counts, default=1) < 1 or sum(counts) != rows:
        raise ObjectiveInputError(
            f"windows: expected each item's window count (>= 1) summing to the {rows} audio rows, got {counts}"
        )
    longest = int(gather_no_grad(torch.tensor([max(counts, default=1)], device=device)).max())
    starts = torch.tensor([0, *counts[:-1]], device=device).cumsum(0)
    last = torch.tensor(counts, device=device) - 1
    return starts[:, None] + torch.arange(longest, device=device).clamp(max=last[:, None])


def _pad_to(tokens: torch.Tensor, length: int | None = None) -> torch.Tensor:
    """Right-pad [B, L] token rows with zeros to `length` (default: the longest across processes)."""
    if length is None:
        length = int(gather_no_grad(torch.tensor([tokens.shape[1]], device=tokens.device)).max())
    return F.pad(tokens, (0, length - tokens.shape[1]))


class Stage1Objective(nn.Module):
    """ATC + ATM + ATG of one local batch; see the module docstring.

    Call it with the model, the normalised audio, the tokenised captions (row i describes clip i), their
    `ContentKeys` and the step's generator (the hard negatives' draw).
    """

    def __init__(
        self,
        weights: ObjectiveWeights | None = None,
        negatives: NegativeSampling | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"Stage1Objective: expected 0 <= rank < world_size, got {rank=}, {world_size=}")
        self.weights = weights or ObjectiveWeights()
        self.negatives = negatives or NegativeSampling()
        self.rank = rank
        self.world_size = world_size

    def forward(
        self,
        model: Stage1Model,
        audio: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        keys: ContentKeys,
        generator: torch.Generator,
        windows: Sequence[int] | None = None,
    ) -> Stage1Losses:
        temperature = model.temperature()
        batch = input_ids.shape[0]
        rows = slice(self.rank * batch, (self.rank + 1) * batch)
        device = input_ids.device
        slots = window_slots(windows, audio.features.shape[0], device)
        if slots.shape[0] != batch:
            raise ObjectiveInputError(
                f"windows: expected {batch} items, one per caption, got {slots.shape[0]}"
            )

        # ATC: queries and text never see each other; every matching pair of the global batch is a positive.
        # An item's queries are those of all its windows.
        queries = model.query_pass(audio)
        window_embeds = model.query_embeddings(queries)[slots]
        text_embeds = model.text_embeddings(input_ids, attention_mask)
        everyone = keys.to(device).gather()
        matches = content_matches(everyone, everyone, rank=0)
        local = ContentMatches(matches.clip_to_caption[rows], matches.caption_to_clip[rows])
        contrastive = ContrastiveLoss(self.rank, self.world_size)(
            window_embeds.flatten(1, 2), text_embeds, temperature, local
        )
        # ATM: one hard negative caption per clip and one hard negative clip per caption.
        sim_a2t = gather_no_grad(contrastive.sim_a2t).float().cpu()
        sim_t2a = gather_no_grad(contrastive.sim_t2a).float().cpu()
        if not (torch.isfinite(sim_a2t).all() and torch.isfinite(sim_t2a).all()):
            # Diverged: no negatives can be drawn. A NaN loss lets the trainer skip and count the step.
            nan = contrastive.loss * float("nan")
            return Stage1Losses(nan, contrastive.loss, nan, nan, temperature.detach())
        cpu_matches = ContentMatches(matches.clip_to_caption.cpu(), matches.caption_to_clip.cpu())
        negatives = sample_hard_negatives(sim_a2t, sim_t2a, cpu_matches, generator, self.negatives)
        # The window each pair reads in ATM and ATG, the one its best query lies in: [B, G] of the local items
        # for the global captions, and of the local captions for the global items.
        per_window = window_embeds.shape[2]
        best_windows = (contrastive.best_query_a2t // per_window, contrastive.best_query_t2a // per_window)
        match = self._matching(model, audio, input_ids, attention_mask, slots, best_windows, negatives, rows)

        # ATG: the caption from a decoder start token, text causal, reading the contrastive pass's queries of
        # the item's window most similar to it.
        dec_ids, lm_labels = prepare_generation_inputs(
            input_ids, attention_mask, model.decoder_start_token_id, model.pad_token_id
        )
        # The LM head runs only where a next token is predicted (not on padding or each caption's last token).
        positions, targets = next_token_targets(lm_labels)
        own = torch.arange(batch, device=device)
        own_queries = queries.rows(slots[own, best_windows[0][own, own + rows.start]])
        generation = target_loss(
            model.generation_logits(own_queries, dec_ids, attention_mask, at=positions), targets
        )
        # A mean over the global batch's caption tokens, not this process's (see global_token_share).
        generation = generation * global_token_share(positions.sum())

        weights = self.weights
        total = weights.atc * contrastive.loss + weights.atm * match + weights.atg * generation
        return Stage1Losses(total, contrastive.loss, match, generation, temperature.detach())

    def _matching(
        self,
        model: Stage1Model,
        audio: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        slots: torch.Tensor,
        best_windows: tuple[torch.Tensor, torch.Tensor],
        negatives: HardNegatives,
        rows: slice,
    ) -> torch.Tensor:
        """ATM loss of the local positives, their negative captions and their negative clips (1 : 2), each
        pair read on its item's window most similar to its caption (`best_windows`: [B, G] of the local items
        for the global captions, and of the local captions for the global items)."""
        batch = input_ids.shape[0]
        device = input_ids.device
        text_index = negatives.text_index[rows].to(device)
        audio_index = negatives.audio_index[rows].to(device)
        own = torch.arange(batch, device=device)
        of_items, of_captions = best_windows
        positive = of_items[own, own + rows.start]
        negative_caption = of_items[own, text_index]
        negative_item = of_captions[own, audio_index]
        count = slots.shape[1]
        item_features, item_mask = audio.features[slots], audio.mask[slots]
        all_features, all_masks = gather_padded(item_features.flatten(0, 1), item_mask.flatten(0, 1))
        all_features = all_features.unflatten(0, (-1, count))
        all_masks = all_masks.unflatten(0, (-1, count))
        all_ids = gather_no_grad(_pad_to(input_ids))
        all_text_mask = gather_no_grad(_pad_to(attention_mask))

        frames = all_features.shape[2]
        own_features = F.pad(item_features, (0, 0, 0, frames - item_features.shape[2]))
        own_mask = F.pad(item_mask, (0, frames - item_mask.shape[2]), value=False)
        own_ids = _pad_to(input_ids, all_ids.shape[1])
        own_text_mask = _pad_to(attention_mask, all_ids.shape[1])
        pair_audio = dataclasses.replace(
            audio,
            features=torch.cat(
                [
                    own_features[own, positive],
                    own_features[own, negative_caption],
                    all_features[audio_index, negative_item],
                ]
            ),
            mask=torch.cat(
                [
                    own_mask[own, positive],
                    own_mask[own, negative_caption],
                    all_masks[audio_index, negative_item],
                ]
            ),
        )
        pair_ids = torch.cat([own_ids, all_ids[text_index], own_ids])
        pair_text_mask = torch.cat([own_text_mask, all_text_mask[text_index], own_text_mask])
        labels = torch.cat([torch.ones(batch), torch.zeros(2 * batch)]).long().to(device)
        valid = torch.cat(
            [torch.ones(batch, dtype=torch.bool), negatives.text_valid[rows], negatives.audio_valid[rows]]
        ).to(device)
        return matching_loss(model.match_logits(pair_audio, pair_ids, pair_text_mask), labels, valid)
