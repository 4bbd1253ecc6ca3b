"""Stage-1 multi-target pre-training: ATC, ATM with hard negatives, and ATG, for one batch.

Hard negatives are drawn over the *global* batch with a generator seeded per step and identical on
every process, then each process keeps its own rows. So N processes draw exactly the negatives one
process would draw for the same global batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from mint.distributed import gather_no_grad, gather_with_grad, global_token_share, world_info
from mint.modeling.outputs import AudioFeatures, Stage1Output
from mint.objectives.contrastive import ContrastiveLoss
from mint.objectives.generation import IGNORE_INDEX, generation_loss, prepare_generation_inputs
from mint.objectives.matching import matching_loss, sample_hard_negatives

if TYPE_CHECKING:
    from mint.modeling.mint import MintModel


@dataclass
class ObjectiveWeights:
    atc: float = 1.0
    atm: float = 1.0
    atg: float = 1.0


def gather_padded(features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """All-gather [B, T, D] features (with gradients) and masks whose T may differ across processes."""
    longest = int(gather_no_grad(torch.tensor([features.shape[1]], device=features.device)).max())
    pad = longest - features.shape[1]
    if pad:
        features = F.pad(features, (0, 0, 0, pad))
        mask = F.pad(mask, (0, pad), value=False)
    return gather_with_grad(features), gather_no_grad(mask)


def stage1_losses(
    model: MintModel,
    audio: AudioFeatures,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    audio_keys: torch.Tensor,
    text_keys: torch.Tensor,
    weights: ObjectiveWeights,
    generator: torch.Generator,
) -> Stage1Output:
    rank, world_size = world_info()
    batch = input_ids.shape[0]
    temperature = model.temperature()

    # ATC: queries and text never see each other.
    audio_embeds = model.audio_embeddings(audio)
    text_embeds = model.text_embeddings(input_ids, attention_mask)
    contrastive = ContrastiveLoss(rank=rank, world_size=world_size)(audio_embeds, text_embeds, temperature)

    # ATM: one hard negative caption per clip and one hard negative clip per caption.
    global_sim_a2t = gather_no_grad(contrastive.sim_a2t)
    global_sim_t2a = gather_no_grad(contrastive.sim_t2a)
    if not (torch.isfinite(global_sim_a2t).all() and torch.isfinite(global_sim_t2a).all()):
        # Diverged: no negatives can be drawn. A NaN loss lets the trainer skip and count the step.
        nan = contrastive.loss * float("nan")
        return Stage1Output(nan, contrastive.loss, nan, nan, temperature.detach())
    all_audio_keys = gather_no_grad(audio_keys)
    all_text_keys = gather_no_grad(text_keys)
    negatives = sample_hard_negatives(
        global_sim_a2t.float().cpu(),
        global_sim_t2a.float().cpu(),
        all_audio_keys.cpu(),
        all_text_keys.cpu(),
        rank=0,
        generator=generator,
    )
    rows = slice(rank * batch, (rank + 1) * batch)
    all_features, all_masks = gather_padded(audio.features, audio.mask)
    all_ids = gather_no_grad(_pad_to(input_ids, all_features.device))
    all_text_mask = gather_no_grad(_pad_to(attention_mask, all_features.device))
    text_index = negatives.text_index[rows].to(all_ids.device)
    audio_index = negatives.audio_index[rows].to(all_features.device)

    local_length = all_features.shape[1]
    own_features = F.pad(audio.features, (0, 0, 0, local_length - audio.features.shape[1]))
    own_mask = F.pad(audio.mask, (0, local_length - audio.mask.shape[1]), value=False)
    own_ids = _pad_to(input_ids, input_ids.device, all_ids.shape[1])
    own_text_mask = _pad_to(attention_mask, input_ids.device, all_ids.shape[1])
    pair_audio = AudioFeatures(
        torch.cat([own_features, own_features, all_features[audio_index]]),
        torch.cat([own_mask, own_mask, all_masks[audio_index]]),
    )
    pair_ids = torch.cat([own_ids, all_ids[text_index], own_ids])
    pair_text_mask = torch.cat([own_text_mask, all_text_mask[text_index], own_text_mask])
    labels = torch.cat([torch.ones(batch), torch.zeros(2 * batch)]).long().to(input_ids.device)
    valid = torch.cat(
        [
            torch.ones(batch, dtype=torch.bool),
            negatives.text_valid[rows].cpu(),
            negatives.audio_valid[rows].cpu(),
        ]
    ).to(input_ids.device)
    match = matching_loss(model.match_logits(pair_audio, pair_ids, pair_text_mask), labels, valid)

    # ATG: the caption from a decoder start token, text causal, seeing all queries.
    dec_ids, lm_labels = prepare_generation_inputs(
        input_ids, attention_mask, model.decoder_start_token_id, model.tokenizer.pad_token_id
    )
    generation = generation_loss(model.generation_logits(audio, dec_ids, attention_mask), lm_labels)
    # A mean over the global batch's caption tokens, not this process's (see global_token_share).
    generation = generation * global_token_share((lm_labels[:, 1:] != IGNORE_INDEX).sum())

    total = weights.atc * contrastive.loss + weights.atm * match + weights.atg * generation
    return Stage1Output(total, contrastive.loss, match, generation, temperature.detach())


def _pad_to(tokens: torch.Tensor, device: torch.device, length: int | None = None) -> torch.Tensor:
    """Right-pad [B, L] token rows with zeros to `length` (default: the longest across processes)."""
    if length is None:
        length = int(gather_no_grad(torch.tensor([tokens.shape[1]], device=tokens.device)).max())
    return F.pad(tokens, (0, length - tokens.shape[1])).to(device)
