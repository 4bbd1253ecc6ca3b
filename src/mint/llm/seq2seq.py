"""Encoder-decoder LLMs (T5, Flan-T5, BART...): soft prompt + instruction into the encoder, response as
the decoder's targets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mint.errors import CheckpointError
from mint.llm.base import IGNORE_INDEX, LLMAdapter, LMBatch, TargetLogits, target_logprobs
from mint.llm.config import LLMConfig


class Seq2SeqAdapter(LLMAdapter):
    """Encoder input `[soft prompt][instruction tokens]` (the instruction keeps the tokenizer's markers,
    e.g. T5's closing `</s>`); decoder targets `[response tokens][eos]`, right padded with `IGNORE_INDEX`.
    The encoder is bidirectional, so padding goes on the right in training and generation alike."""

    is_encoder_decoder = True

    def __init__(self, model: nn.Module, tokenizer: Any, config: LLMConfig) -> None:
        super().__init__(model, tokenizer, config)
        start = getattr(model.generation_config, "decoder_start_token_id", None)
        if start is None:
            start = getattr(model.config, "decoder_start_token_id", None)
        if start is None:
            raise CheckpointError(f"{config.name_or_path}: the model config has no decoder_start_token_id")
        self.decoder_start_token_id = int(start)

    def build_batch(
        self,
        soft_prompt: Tensor,
        instructions: Sequence[str],
        responses: Sequence[str] | None = None,
        padding_side: str | None = None,
        prompt_mask: Tensor | None = None,
    ) -> LMBatch:
        ids, soft_slots, mask, _ = self._layout(
            self._prompt_lengths(soft_prompt, prompt_mask),
            self._prompt_rows(instructions),
            padding_side or self.training_padding_side,
        )
        labels = None if responses is None else self._labels(self._response_ids(responses))
        return LMBatch(
            inputs_embeds=self._embed(ids, soft_slots, soft_prompt, prompt_mask),
            attention_mask=mask,
            labels=labels,
        )

    def _labels(self, responses: list[list[int]]) -> Tensor:
        labels = torch.full((len(responses), max(map(len, responses))), IGNORE_INDEX, dtype=torch.long)
        for row, ids in enumerate(responses):
            labels[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return labels.to(self.device)

    def _decoder_inputs(self, labels: Tensor) -> Tensor:
        """Teacher forcing: the decoder start token, then the targets shifted right (ignored ones as pad)."""
        shifted = labels.new_full(labels.shape, self.decoder_start_token_id)
        shifted[:, 1:] = labels[:, :-1]
        return shifted.masked_fill(shifted == IGNORE_INDEX, self.tokenizer.pad_token_id)

    def _predict(self, batch: LMBatch) -> TargetLogits:
        # The decoder runs over the response only, so its logits are (nearly) all targets already.
        logits = self.model(
            inputs_embeds=batch.inputs_embeds,
            attention_mask=batch.attention_mask,
            decoder_input_ids=self._decoder_inputs(batch.labels),
            use_cache=False,
        ).logits
        return TargetLogits(logits[batch.labels != IGNORE_INDEX], batch.labels)

    def _candidate_logprobs(
        self,
        soft_prompt: Tensor,
        instructions: Sequence[str],
        candidates: list[list[str]],
        prompt_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        # The encoder runs once per prompt; only its output is repeated over the candidates.
        from transformers.modeling_outputs import BaseModelOutput

        width = len(candidates[0])
        batch = self.build_batch(soft_prompt, instructions, prompt_mask=prompt_mask)
        encoded = self.model.get_encoder()(
            inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask
        )
        labels = self._labels(self._response_ids([text for row in candidates for text in row]))
        logits = self.model(
            encoder_outputs=BaseModelOutput(
                last_hidden_state=encoded.last_hidden_state.repeat_interleave(width, 0)
            ),
            attention_mask=batch.attention_mask.repeat_interleave(width, 0),
            decoder_input_ids=self._decoder_inputs(labels),
            use_cache=False,
        ).logits
        picked, mask = target_logprobs(TargetLogits(logits[labels != IGNORE_INDEX], labels))
        return picked.sum(-1).view(-1, width), mask.sum(-1).view(-1, width).float()

    def _generation_extras(self) -> dict:
        return {"decoder_start_token_id": self.decoder_start_token_id}

    def _generate(
        self,
        soft_prompt: Tensor,
        instructions: Sequence[str],
        generation_config: Any,
        prompt_mask: Tensor | None = None,
    ) -> Tensor:
        batch = self.build_batch(
            soft_prompt,
            instructions,
            None,
            padding_side=self.generation_padding_side,
            prompt_mask=prompt_mask,
        )
        sequences = self.model.generate(
            inputs_embeds=batch.inputs_embeds,
            attention_mask=batch.attention_mask,
            generation_config=generation_config,
        )
        # The decoder start token opens every row.
        return sequences[:, 1:]
