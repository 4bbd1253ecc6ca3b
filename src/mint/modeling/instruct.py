"""Stage 2: instruction-aware extraction, the soft prompt, and the frozen LLM's loss, text and scores.

The instruction, in the Bridge-Net's own tokenizer, sits after the queries with the bidirectional mask,
so the queries read the audio with the instruction in view. Only the Nq query outputs leave the
Bridge-Net; `llm_proj` maps them to the LLM's width as a soft prompt, and the LLM adapter puts the
instruction again (in the LLM's tokenizer) after it.

An item may be read as several windows (`windows`: how many consecutive audio rows each item has): each
window is read with the item's instruction, gets the learned embedding of its position in the item
(`model.window_position`, `model.windowing.positions`), and the item's soft prompt is its windows' in
order; rows with fewer windows than the longest get a `prompt_mask` the LLM adapter lays them out by.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from mint.bridge import AttentionMode
from mint.distributed import global_token_share
from mint.errors import ConfigError, MintError
from mint.llm import LLMAdapter
from mint.modeling.outputs import AudioFeatures

if TYPE_CHECKING:
    from mint.modeling.mint import MintModel


class InstructInputError(MintError, ValueError):
    """Instructions or responses handed to a stage-2 model do not fit the audio batch."""


def require_llm(model: MintModel) -> LLMAdapter:
    if model.llm is None:
        raise ConfigError(
            "model.llm: this model has no LLM (a stage-1 model); instruction following, generation and "
            "scoring need a stage-2 model"
        )
    return model.llm


def check_texts(name: str, texts: Sequence[str], batch: int) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
        raise InstructInputError(f"{name}: expected a list of strings, got {texts!r}")
    if len(texts) != batch:
        raise InstructInputError(f"{name}: has {len(texts)} entries for a batch of {batch} clips")
    return list(texts)


def instruction_queries(model: MintModel, audio: AudioFeatures, instructions: Sequence[str]) -> Tensor:
    """Query outputs [B, Nq, H], read from the audio with the instruction tokens in view."""
    texts = check_texts("instructions", instructions, audio.features.shape[0])
    batch = model.tokenizer(
        texts,
        padding="longest",
        truncation=True,
        max_length=model.config.max_instruction_length,
        return_tensors="pt",
    )
    device = audio.features.device
    out = model.bridge(
        audio_features=audio.features,
        audio_mask=audio.mask,
        input_ids=batch["input_ids"].to(device),
        attention_mask=batch["attention_mask"].to(device),
        mode=AttentionMode.BIDIRECTIONAL,
    )
    return out.query_output


def window_prompts(model: MintModel, audio: AudioFeatures, instructions: Sequence[str]) -> Tensor:
    """Each window's soft prompt [N, Nq, D_llm] before its position is added."""
    require_llm(model)
    return model.llm_proj(instruction_queries(model, audio, instructions))


def add_positions(model: MintModel, prompts: Tensor, slots: Tensor) -> Tensor:
    """`prompts` [N, Nq, D_llm] plus the window-position embedding of each one's slot `slots` [N] (slots
    past the last learned position share it)."""
    table = model.window_position
    return prompts + table[slots.clamp(max=table.shape[0] - 1).to(table.device)].unsqueeze(1)


def soft_prompt(model: MintModel, audio: AudioFeatures, instructions: Sequence[str]) -> Tensor:
    """One window per item: its soft prompt [B, Nq, D_llm] at position 0."""
    prompts = window_prompts(model, audio, instructions)
    return add_positions(model, prompts, torch.zeros(prompts.shape[0], dtype=torch.long))


def check_windows(windows: Sequence[int], rows: int, items: int) -> list[int]:
    counts = list(windows)
    if len(counts) != items or any(not isinstance(count, int) or count < 1 for count in counts):
        raise InstructInputError(f"windows: expected {items} counts >= 1 (one per item), got {windows!r}")
    if sum(counts) != rows:
        raise InstructInputError(f"windows: the counts add up to {sum(counts)} windows; the audio has {rows}")
    return counts


def windowed_prompt(
    model: MintModel, audio: AudioFeatures, instructions: Sequence[str], windows: Sequence[int] | None
) -> tuple[Tensor, Tensor | None]:
    """The soft prompt [B, T, D_llm] of items of `windows[i]` consecutive audio rows each (None: one each)
    and its `prompt_mask` [B, T] (None when every item has as many windows)."""
    if windows is None:
        return soft_prompt(model, audio, instructions), None
    counts = check_windows(windows, audio.features.shape[0], len(instructions))
    items = check_texts("instructions", instructions, len(counts))
    per_window = [instruction for instruction, count in zip(items, counts, strict=True) for _ in range(count)]
    slots = torch.cat([torch.arange(count) for count in counts])
    prompts = add_positions(model, window_prompts(model, audio, per_window), slots)
    rows = [row.flatten(0, 1) for row in prompts.split(counts)]
    prompt = nn.utils.rnn.pad_sequence(rows, batch_first=True)
    if len(set(counts)) == 1:
        return prompt, None
    lengths = torch.tensor([row.shape[0] for row in rows], device=prompt.device)
    mask = torch.arange(prompt.shape[1], device=prompt.device) < lengths[:, None]
    return prompt, mask


def instruct_loss(
    model: MintModel,
    audio: AudioFeatures,
    instructions: Sequence[str],
    responses: Sequence[str],
    windows: Sequence[int] | None = None,
) -> Tensor:
    """The LLM's mean negative log-likelihood of the response tokens. Under data parallelism it is scaled
    by this process's share of the global batch's response tokens, so that the mean over processes (and
    DDP's averaged gradient) is that of one process holding the whole batch, whatever the lengths."""
    llm = require_llm(model)
    prompt, mask = windowed_prompt(model, audio, instructions, windows)
    responses = check_texts("responses", responses, prompt.shape[0])
    out = llm(prompt, list(instructions), responses, prompt_mask=mask)
    return out.loss * global_token_share(out.tokens)


def generate(
    model: MintModel,
    audio: AudioFeatures,
    instructions: Sequence[str],
    windows: Sequence[int] | None = None,
    **generation_kwargs: Any,
) -> list[str]:
    llm = require_llm(model)
    with torch.no_grad():
        prompt, mask = windowed_prompt(model, audio, instructions, windows)
        return llm.generate(prompt, list(instructions), prompt_mask=mask, **generation_kwargs)


def score(
    model: MintModel,
    audio: AudioFeatures,
    instructions: Sequence[str],
    candidates: Sequence[str] | Sequence[Sequence[str]],
    normalise: bool = False,
    rows_per_pass: int | None = None,
    windows: Sequence[int] | None = None,
) -> Tensor:
    llm = require_llm(model)
    with torch.no_grad():
        prompt, mask = windowed_prompt(model, audio, instructions, windows)
        return llm.score(
            prompt,
            list(instructions),
            candidates,
            normalise=normalise,
            rows_per_pass=rows_per_pass,
            prompt_mask=mask,
        )


def stage2_idle_modules(model: MintModel) -> list[nn.Module]:
    """The trainable parts the stage-2 loss never reaches: the stage-1 heads, and the text feed-forward of
    the last Bridge-Net layer (its text outputs are dropped; only the query outputs leave); with
    `model.stage1_retrieval`, also the audio LayerNorm that the kept stage-1 Bridge-Net reads through."""
    bridge = model.bridge
    idle: list[nn.Module] = [
        model.audio_proj,
        model.text_proj,
        model.match_head,
        model.temperature,
        bridge.lm_head,
    ]
    if bridge.config.separate_query_ffn:
        idle.append(bridge.layers[-1].text_ffn)
    if model.retrieval_bridge is not None:
        # The stage-1 copy reads the audio through this LayerNorm: it stays as stage 1 left it.
        idle.append(model.audio_norm)
    return idle
