"""Audio-text contrastive objective (ATC).

The audio side is a set of Nq query embeddings per clip and the text side one `[CLS]` embedding
per caption; a pair's similarity is the best-matching query. Negatives are all captions and clips
of the global batch, gathered from every process with gradients, so each rank's loss also trains
the features computed on the other ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mint.distributed import gather_no_grad, gather_with_grad
from mint.errors import ConfigError
from mint.objectives._checks import ObjectiveInputError, require_dims, upcast
from mint.objectives.keys import ContentMatches


def audio_text_similarity(audio_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """Similarity of every clip to every caption: the maximum over queries of the dot products.

    Args:
        audio_embeds: `[Ba, Nq, D]` query embeddings, each already L2-normalised.
        text_embeds: `[Bt, D]` caption embeddings, already L2-normalised.

    Returns:
        `[Ba, Bt]`; with normalised inputs each entry is the best cosine similarity over queries.
    """
    return query_similarity(audio_embeds, text_embeds).amax(dim=1)


def query_similarity(audio_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """`[Ba, Nq, Bt]`: the dot product of every query of every clip with every caption (shapes as in
    `audio_text_similarity`, whose maximum over queries this is)."""
    require_dims("audio_embeds", audio_embeds, 3, "[Ba, Nq, D]")
    require_dims("text_embeds", text_embeds, 2, "[Bt, D]")
    clips, queries, dim = audio_embeds.shape
    if text_embeds.shape[1] != dim:
        raise ObjectiveInputError(
            f"text_embeds: expected embedding size {dim} to match audio_embeds, got {text_embeds.shape[1]}"
        )
    per_query = audio_embeds.reshape(clips * queries, dim) @ text_embeds.T
    return per_query.view(clips, queries, -1)


class LearnableTemperature(nn.Module):
    """A trainable softmax temperature, kept inside `[min, max]`.

    The clamp is applied to the parameter itself (not only to the returned value) so that an
    optimizer step that overshoots the range is undone before the next use and the gradient never
    vanishes, as it would behind a functional clamp. The parameter is written only when it is out
    of range, so reading the temperature twice in one step stays safe for autograd.
    """

    def __init__(self, init: float = 0.07, min: float = 0.001, max: float = 0.5) -> None:
        super().__init__()
        if not 0.0 < min <= init <= max:
            raise ConfigError(
                f"temperature: expected 0 < min <= init <= max, got min={min}, init={init}, max={max}"
            )
        self.min = float(min)
        self.max = float(max)
        self.value = nn.Parameter(torch.tensor(float(init)))

    def forward(self) -> torch.Tensor:
        with torch.no_grad():
            current = float(self.value)
            if not self.min <= current <= self.max:
                self.value.clamp_(self.min, self.max)
        return self.value

    def extra_repr(self) -> str:
        return f"min={self.min}, max={self.max}"


@dataclass
class ContrastiveOutput:
    """Result of `ContrastiveLoss`.

    `sim_a2t[i, j]` is the cosine similarity (best query) of local clip i to global caption j, `sim_t2a[i, j]`
    of local caption i to global clip j; both detached (hard-negative mining reads them). `best_query_a2t`
    and `best_query_t2a` (same layout) say which query gave each: for a clip of several windows whose
    queries are laid end to end, which window.
    """

    loss: torch.Tensor
    sim_a2t: torch.Tensor
    sim_t2a: torch.Tensor
    best_query_a2t: torch.Tensor
    best_query_t2a: torch.Tensor


class ContrastiveLoss(nn.Module):
    """Symmetric InfoNCE of local rows against the global batch.

    Every rank must pass the same local batch size B; the positive of local row i is global
    column `rank * B + i`. With `positives` (`mint.objectives.keys.content_matches`) every matching column
    counts as a positive and the target probability is spread evenly over them, so that a clip is not
    pushed away from another caption of itself, or from a caption of the same class or scene.

    `gather_with_grad=False` gathers the other ranks' features as constants (the local slice keeps
    its graph): cheaper, but the other ranks' features no longer receive this rank's gradient.
    """

    def __init__(self, rank: int = 0, world_size: int = 1, gather_with_grad: bool = True) -> None:
        super().__init__()
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"ContrastiveLoss: expected 0 <= rank < world_size, got {rank=}, {world_size=}")
        self.rank = rank
        self.world_size = world_size
        self.gather_with_grad = gather_with_grad

    def _gather(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        if self.world_size == 1:
            return tensor
        if self.gather_with_grad:
            gathered = gather_with_grad(tensor)
        else:
            others = gather_no_grad(tensor)
            start = self.rank * tensor.shape[0]
            gathered = torch.cat([others[:start], tensor, others[start + tensor.shape[0] :]])
        if gathered.shape[0] != self.world_size * tensor.shape[0]:
            raise ObjectiveInputError(
                f"{name}: gathered {gathered.shape[0]} rows from a local batch of {tensor.shape[0]}, "
                f"expected world_size={self.world_size} times as many; is the process group initialised?"
            )
        return gathered

    def _targets(self, positives: torch.Tensor | None, logits: torch.Tensor, name: str) -> torch.Tensor:
        batch = logits.shape[0]
        if positives is None:
            return torch.arange(batch, device=logits.device) + self.rank * batch
        if positives.shape != logits.shape or positives.dtype != torch.bool:
            raise ObjectiveInputError(
                f"positives.{name}: expected a bool tensor of shape {tuple(logits.shape)}, "
                f"got {positives.dtype} {tuple(positives.shape)}"
            )
        rows = torch.arange(batch, device=positives.device)
        own = positives[rows, rows + self.rank * batch]
        if not own.all():
            raise ObjectiveInputError(f"positives.{name}: each row's own pair must be one of its positives")
        weights = positives.to(device=logits.device, dtype=logits.dtype)
        return weights / weights.sum(dim=1, keepdim=True)

    def forward(
        self,
        audio_embeds: torch.Tensor,
        text_embeds: torch.Tensor,
        temperature: torch.Tensor | float,
        positives: ContentMatches | None = None,
    ) -> ContrastiveOutput:
        """Loss of the local batch.

        Args:
            audio_embeds: `[B, Nq, D]` L2-normalised query embeddings of the local clips.
            text_embeds: `[B, D]` L2-normalised caption embeddings, row i describing clip i.
            temperature: positive scalar (e.g. `LearnableTemperature()()`).
            positives: optional matches of the local rows against the global batch (`[B, B * world_size]`
                each way); None: each row's own pair alone.
        """
        require_dims("audio_embeds", audio_embeds, 3, "[B, Nq, D]")
        require_dims("text_embeds", text_embeds, 2, "[B, D]")
        batch = audio_embeds.shape[0]
        if text_embeds.shape[0] != batch:
            raise ObjectiveInputError(
                f"text_embeds: expected {batch} rows to match audio_embeds, got {text_embeds.shape[0]}"
            )
        if isinstance(temperature, (int, float)) and temperature <= 0:
            raise ObjectiveInputError(f"temperature: expected a positive value, got {temperature}")
        all_audio = self._gather("audio_embeds", audio_embeds)
        all_text = self._gather("text_embeds", text_embeds)
        per_query_a2t = query_similarity(audio_embeds, all_text)
        per_query_t2a = query_similarity(all_audio, text_embeds)
        sim_a2t = upcast(per_query_a2t.amax(dim=1))
        sim_t2a = upcast(per_query_t2a.amax(dim=1).T)
        logits_a2t = sim_a2t / temperature
        logits_t2a = sim_t2a / temperature
        a2t, t2a = (
            (None, None) if positives is None else (positives.clip_to_caption, positives.caption_to_clip)
        )
        targets_a2t = self._targets(a2t, logits_a2t, "clip_to_caption")
        targets_t2a = self._targets(t2a, logits_t2a, "caption_to_clip")
        loss = (F.cross_entropy(logits_a2t, targets_a2t) + F.cross_entropy(logits_t2a, targets_t2a)) / 2
        return ContrastiveOutput(
            loss=loss,
            sim_a2t=sim_a2t.detach(),
            sim_t2a=sim_t2a.detach(),
            best_query_a2t=per_query_a2t.detach().argmax(dim=1),
            best_query_t2a=per_query_t2a.detach().argmax(dim=1).T,
        )
