"""Decoder-only LLMs (Llama, Qwen2, GPT-2, OPT...): `[soft prompt][instruction][response][eos]` in one
sequence, loss on the response and its end-of-sequence token only."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mint.llm.base import IGNORE_INDEX, LLMAdapter, LMBatch
from mint.llm.config import LLMConfig


class CausalAdapter(LLMAdapter):
    """Each row is built on its own (instruction with the tokenizer's markers, e.g. Llama's `<s>`, then
    response + eos) and then padded: on the right for training and scoring, on the left for generation
    so every prompt ends where the first new token goes. Position ids count real positions only, so a
    row's positions do not depend on how much padding it got.

    Generation runs from token ids, with the soft prompt put into the embedded prompt by a hook on the
    input embeddings: transformers feeds given `inputs_embeds` to a decoder-only model only on its
    first step, so they cannot serve generation without the KV cache, which re-embeds the whole
    sequence at every step."""

    is_encoder_decoder = False
    generation_padding_side = "left"

    def __init__(self, model: nn.Module, tokenizer: Any, config: LLMConfig) -> None:
        super().__init__(model, tokenizer, config)
        # A few architectures (e.g. those with ALiBi) derive positions from the mask and take no position ids.
        self._takes_position_ids = "position_ids" in inspect.signature(model.forward).parameters

    def build_batch(
        self,
        soft_prompt: Tensor,
        instructions: Sequence[str],
        responses: Sequence[str] | None = None,
        padding_side: str | None = None,
    ) -> LMBatch:
        queries = soft_prompt.shape[1]
        prompts = self._instruction_ids(instructions)
        answers = [[] for _ in prompts] if responses is None else self._response_ids(responses)
        texts = [prompt + answer for prompt, answer in zip(prompts, answers, strict=True)]
        ids, soft_slots, mask, starts = self._layout(
            queries, texts, padding_side or self.training_padding_side
        )
        labels = None
        if responses is not None:
            labels = torch.full_like(ids, IGNORE_INDEX)
            for row, (prompt, answer, start) in enumerate(zip(prompts, answers, starts, strict=True)):
                begin = start + queries + len(prompt)
                labels[row, begin : begin + len(answer)] = torch.tensor(answer, dtype=torch.long)
        return LMBatch(
            inputs_embeds=self._embed(ids, soft_slots, soft_prompt),
            attention_mask=mask,
            labels=labels,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
        )

    def _predict(self, batch: LMBatch) -> tuple[Tensor, Tensor, Tensor]:
        extra = {"position_ids": batch.position_ids} if self._takes_position_ids else {}
        logits = self.model(
            inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask, use_cache=False, **extra
        ).logits
        return logits, logits[:, :-1], batch.labels[:, 1:]

    def _generate(self, soft_prompt: Tensor, instructions: Sequence[str], generation_config: Any) -> Tensor:
        ids, soft_slots, mask, _ = self._layout(
            soft_prompt.shape[1], self._instruction_ids(instructions), self.generation_padding_side
        )
        width = ids.shape[1]
        embedded_prompts = 0

        def put_soft_prompt(module: nn.Module, inputs: tuple, embeddings: Tensor) -> Tensor | None:
            nonlocal embedded_prompts
            # With the cache, only the first call embeds the prompt; later ones embed the newest token.
            if generation_config.use_cache and embedded_prompts:
                return None
            embedded_prompts += 1
            # Beam search repeats each row num_beams times, next to each other.
            copies = embeddings.shape[0] // ids.shape[0]
            prompt = embeddings[:, :width].masked_scatter(
                soft_slots.repeat_interleave(copies, 0).unsqueeze(-1),
                soft_prompt.repeat_interleave(copies, 0).to(embeddings.dtype),
            )
            return torch.cat([prompt, embeddings[:, width:]], dim=1)

        hook = self.model.get_input_embeddings().register_forward_hook(put_soft_prompt)
        try:
            sequences = self.model.generate(
                input_ids=ids, attention_mask=mask, generation_config=generation_config
            )
        finally:
            hook.remove()
        return sequences[:, width:]
