"""Decoder-only LLMs (Llama, Qwen2, SmolLM2, GPT-2, OPT...): soft prompt, instruction and response in one
sequence, loss on the response and its end-of-sequence token only."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mint.errors import ConfigError
from mint.llm.base import IGNORE_INDEX, LLMAdapter, LMBatch, PromptRow, TargetLogits, target_logprobs
from mint.llm.config import LLMConfig

# Stands for the soft prompt inside a rendered chat template; the text is split there.
_AUDIO_MARK = "\x00mint-audio\x00"


class CausalAdapter(LLMAdapter):
    """Each row is built on its own and then padded: on the right for training and scoring, on the left
    for generation so every prompt ends where the first new token goes. Position ids count real positions
    only, so a row's positions do not depend on how much padding it got.

    Prompt formats (`llm.prompt_format`): "plain" puts the soft prompt first, then the instruction with
    the tokenizer's own markers (e.g. Llama's `<s>`), as InstructBLIP does; "chat" renders the
    checkpoint's chat template with one user turn that holds the soft prompt and then the instruction,
    and the assistant turn opened, so an instruction-tuned LLM reads it as it was trained to (the
    response then closes with the tokenizer's end-of-sequence token, e.g. SmolLM2's `<|im_end|>`).
    "auto" is "chat" when the tokenizer has a chat template.

    Only the positions that predict a target go through the output layer: the vocabulary projection is
    most of a small LLM's work (49k words against a 576-wide SmolLM2), and in training only the
    response's few positions need it.

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
        # transformers 5 renamed `past_key_values` (argument and output field) to `cache`.
        base_parameters = inspect.signature(model.base_model.forward).parameters
        self._cache_field = "cache" if "cache" in base_parameters else "past_key_values"
        self.chat = self._uses_chat_template(config)
        # Architectures that scale or cap the logits after the output layer get their full logits computed.
        # Both switches are on wherever they apply; benchmarks and equality tests turn them off to time or
        # check the plain path.
        model_config = model.config
        self.head_at_targets = model.get_output_embeddings() is not None and not any(
            getattr(model_config, name, None) for name in ("final_logit_softcapping", "logit_scale")
        )
        self.share_prompt_prefix = True

    def _uses_chat_template(self, config: LLMConfig) -> bool:
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        if config.prompt_format == "chat" and not has_template:
            raise ConfigError(
                f"llm.prompt_format=chat, but the tokenizer of {config.name_or_path!r} has no chat template"
            )
        return config.prompt_format == "chat" or (config.prompt_format == "auto" and has_template)

    def _prompt_rows(self, instructions: Sequence[str]) -> list[PromptRow]:
        if not self.chat:
            return super()._prompt_rows(instructions)
        messages = (
            []
            if self.config.system_prompt is None
            else [{"role": "system", "content": self.config.system_prompt}]
        )
        rendered = self.tokenizer.apply_chat_template(
            [*messages, {"role": "user", "content": _AUDIO_MARK + "{instruction}"}],
            tokenize=False,
            add_generation_prompt=True,
        )
        before, after = rendered.split(_AUDIO_MARK)
        opening, closing = after.split("{instruction}")

        def ids(text: str) -> list[int]:
            # The template's text carries its own special tokens (BOS included, where it has one).
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

        head, tail = ids(before), ids(closing)
        # Only the instruction itself is cut to length, never the template around it.
        words = self.tokenizer(
            [opening + text for text in instructions],
            add_special_tokens=False,
            truncation=True,
            max_length=self.config.max_instruction_length,
        )["input_ids"]
        return [PromptRow(before=head, after=[*row, *tail]) for row in words]

    def build_batch(
        self,
        soft_prompt: Tensor,
        instructions: Sequence[str],
        responses: Sequence[str] | None = None,
        padding_side: str | None = None,
        prompt_mask: Tensor | None = None,
    ) -> LMBatch:
        queries = self._prompt_lengths(soft_prompt, prompt_mask)
        prompts = self._prompt_rows(instructions)
        answers = [[] for _ in prompts] if responses is None else self._response_ids(responses)
        rows = [
            PromptRow(prompt.before, prompt.after + answer)
            for prompt, answer in zip(prompts, answers, strict=True)
        ]
        ids, soft_slots, mask, starts = self._layout(
            queries, rows, padding_side or self.training_padding_side
        )
        labels = None
        if responses is not None:
            labels = torch.full_like(ids, IGNORE_INDEX)
            for row, (prompt, answer, start) in enumerate(zip(prompts, answers, starts, strict=True)):
                begin = start + len(prompt.before) + queries[row] + len(prompt.after)
                labels[row, begin : begin + len(answer)] = torch.tensor(answer, dtype=torch.long)
        # Right padding starts every row at column 0, so text all rows open with is a shared prefix.
        shared_before = all(prompt.before == prompts[0].before for prompt in prompts) and not any(starts)
        return LMBatch(
            inputs_embeds=self._embed(ids, soft_slots, soft_prompt, prompt_mask),
            attention_mask=mask,
            labels=labels,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            shared_prefix=len(prompts[0].before) if shared_before else 0,
        )

    def _positions(self, position_ids: Tensor) -> dict[str, Tensor]:
        """`position_ids` as a keyword argument, for the architectures that take them."""
        return {"position_ids": position_ids} if self._takes_position_ids else {}

    def _predict(self, batch: LMBatch) -> TargetLogits:
        inputs = {
            "inputs_embeds": batch.inputs_embeds,
            "attention_mask": batch.attention_mask,
            "use_cache": False,
            **self._positions(batch.position_ids),
        }
        # The logit at position t predicts the label at t + 1.
        targets = batch.labels[:, 1:]
        predicting = torch.zeros_like(batch.labels, dtype=torch.bool)
        predicting[:, :-1] = targets != IGNORE_INDEX
        if not self.head_at_targets:
            return TargetLogits(self.model(**inputs).logits[predicting], targets)
        prefix = batch.shared_prefix if self.share_prompt_prefix else 0
        if prefix:
            hidden = self._hidden_after_prefix(batch, prefix)
            predicting = predicting[:, prefix:]
        else:
            hidden = self.model.base_model(**inputs).last_hidden_state
        return TargetLogits(self.model.get_output_embeddings()(hidden[predicting]), targets)

    def _hidden_after_prefix(self, batch: LMBatch, prefix: int) -> Tensor:
        """Last hidden states [B, L - prefix, D] of the columns after a prefix every row shares: the prefix
        runs once, for row 0, and its key/value cache is repeated for the batch. With SmolLM2's chat
        template the system turn is ~40 % of a stage-2 row, computed 16 times over otherwise."""
        shared = self.model.base_model(
            inputs_embeds=batch.inputs_embeds[:1, :prefix],
            attention_mask=batch.attention_mask[:1, :prefix],
            use_cache=True,
            **self._positions(batch.position_ids[:1, :prefix]),
        )
        cache = getattr(shared, self._cache_field)
        cache.batch_repeat_interleave(batch.inputs_embeds.shape[0])
        return self.model.base_model(
            inputs_embeds=batch.inputs_embeds[:, prefix:],
            attention_mask=batch.attention_mask,
            use_cache=True,
            **{self._cache_field: cache},
            **self._positions(batch.position_ids[:, prefix:]),
        ).last_hidden_state

    def _candidate_logprobs(
        self,
        soft_prompt: Tensor,
        instructions: Sequence[str],
        candidates: list[list[str]],
        prompt_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """As the base class, but each prompt runs through the LLM once and its key/value cache serves all
        of its C candidates: rank classification over 10 labels of 2-3 tokens after a 40-token prompt
        then costs about a fifth of running every prompt-candidate pair in full."""
        if not self.head_at_targets:
            return super()._candidate_logprobs(soft_prompt, instructions, candidates, prompt_mask)
        width = len(candidates[0])
        # Left padding: every prompt ends at the last column, where its first candidate token is predicted.
        prompt = self.build_batch(soft_prompt, instructions, padding_side="left", prompt_mask=prompt_mask)
        encoded = self.model.base_model(
            inputs_embeds=prompt.inputs_embeds,
            attention_mask=prompt.attention_mask,
            use_cache=True,
            **self._positions(prompt.position_ids),
        )
        cache = getattr(encoded, self._cache_field)
        cache.batch_repeat_interleave(width)
        answers = self._response_ids([text for row in candidates for text in row])
        # Each answer token but the last is fed, to predict the one after it; the prompt predicts the first.
        fed = max(len(answer) for answer in answers) - 1
        ids = torch.full((len(answers), fed), self.tokenizer.pad_token_id, dtype=torch.long)
        targets = torch.full((len(answers), fed + 1), IGNORE_INDEX, dtype=torch.long)
        fed_mask = torch.zeros((len(answers), fed), dtype=torch.long)
        for row, answer in enumerate(answers):
            ids[row, : len(answer) - 1] = torch.tensor(answer[:-1], dtype=torch.long)
            fed_mask[row, : len(answer) - 1] = 1
            targets[row, : len(answer)] = torch.tensor(answer, dtype=torch.long)
        ids, targets, fed_mask = ids.to(self.device), targets.to(self.device), fed_mask.to(self.device)
        prompt_mask = prompt.attention_mask.repeat_interleave(width, dim=0)
        fed_positions = prompt_mask.sum(-1, keepdim=True) + torch.arange(fed, device=self.device)
        continued = self.model.base_model(
            input_ids=ids,
            attention_mask=torch.cat([prompt_mask, fed_mask], dim=1),
            use_cache=True,
            **{self._cache_field: cache},
            **self._positions(fed_positions),
        ).last_hidden_state
        hidden = torch.cat(
            [encoded.last_hidden_state[:, -1:].repeat_interleave(width, dim=0), continued], dim=1
        )
        logits = self.model.get_output_embeddings()(hidden[targets != IGNORE_INDEX])
        picked, mask = target_logprobs(TargetLogits(logits, targets))
        return picked.sum(-1).view(-1, width), mask.sum(-1).view(-1, width).float()

    def _generate(
        self,
        soft_prompt: Tensor,
        instructions: Sequence[str],
        generation_config: Any,
        prompt_mask: Tensor | None = None,
    ) -> Tensor:
        ids, soft_slots, mask, _ = self._layout(
            self._prompt_lengths(soft_prompt, prompt_mask),
            self._prompt_rows(instructions),
            self.generation_padding_side,
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
                self._real_slots(
                    soft_prompt.repeat_interleave(copies, 0),
                    None if prompt_mask is None else prompt_mask.repeat_interleave(copies, 0),
                ).to(embeddings.dtype),
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
