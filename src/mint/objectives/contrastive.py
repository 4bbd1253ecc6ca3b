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
from mint.objectives._checks import ObjectiveInputError, require_dims, require_integer, upcast


def audio_text_similarity(audio_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """Similarity of every clip to every caption: the maximum over queries of the dot products.

    Args:
        audio_embeds: `[Ba, Nq, D]` query embeddings, each already L2-normalised.
        text_embeds: `[Bt, D]` caption embeddings, already L2-normalised.

    Returns:
        `[Ba, Bt]`; with normalised inputs each entry is the best cosine similarity over queries.
    """
    require_dims("audio_embeds", audio_embeds, 3, "[Ba, Nq, D]")
    require_dims("text_embeds", text_embeds, 2, "[Bt, D]")
    clips, queries, dim = audio_embeds.shape
    if text_embeds.shape[1] != dim:
        raise ObjectiveInputError(
            f"text_embeds: expected embedding size {dim} to match audio_embeds, got {text_embeds.shape[1]}"
        )
    per_query = audio_embeds.reshape(clips * queries, dim) @ text_embeds.T
    return per_query.view(clips, queries, -1).amax(dim=1)


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

    `sim_a2t[i, j]` is local clip i against global caption j, `sim_t2a[i, j]` local caption i
    against global clip j; both divided by the temperature and detached (hard-negative mining).
    """

    loss: torch.Tensor
    sim_a2t: torch.Tensor
    sim_t2a: torch.Tensor


class ContrastiveLoss(nn.Module):
    """Symmetric InfoNCE of local rows against the global batch.

    Every rank must pass the same local batch size B; the positive of local row i is global
    column `rank * B + i`. With `pair_ids` (one integer per pair, e.g. a hash of the clip's
    identity) every column with the same id counts as a positive and the target probability is
    spread evenly over them, so a clip that appears twice in the global batch is not pushed away
    from itself.

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

    def _targets(self, batch: int, pair_ids: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
        if pair_ids is None:
            return torch.arange(batch, device=logits.device) + self.rank * batch
        require_integer("pair_ids", pair_ids)
        if pair_ids.shape != (batch,):
            raise ObjectiveInputError(f"pair_ids: expected shape ({batch},), got {tuple(pair_ids.shape)}")
        all_ids = gather_no_grad(pair_ids) if self.world_size > 1 else pair_ids
        positives = (pair_ids[:, None] == all_ids[None, :]).to(logits.dtype)
        return positives / positives.sum(dim=1, keepdim=True)

    def forward(
        self,
        audio_embeds: torch.Tensor,
        text_embeds: torch.Tensor,
        temperature: torch.Tensor | float,
        pair_ids: torch.Tensor | None = None,
    ) -> ContrastiveOutput:
        """Loss of the local batch.

        Args:
            audio_embeds: `[B, Nq, D]` L2-normalised query embeddings of the local clips.
            text_embeds: `[B, D]` L2-normalised caption embeddings, row i describing clip i.
            temperature: positive scalar (e.g. `LearnableTemperature()()`).
            pair_ids: optional `[B]` integer identity of each pair's clip.
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
        logits_a2t = upcast(audio_text_similarity(audio_embeds, all_text)) / temperature
        logits_t2a = upcast(audio_text_similarity(all_audio, text_embeds).T) / temperature
        targets = self._targets(batch, pair_ids, logits_a2t)
        loss = (F.cross_entropy(logits_a2t, targets) + F.cross_entropy(logits_t2a, targets)) / 2
        return ContrastiveOutput(loss=loss, sim_a2t=logits_a2t.detach(), sim_t2a=logits_t2a.detach())
