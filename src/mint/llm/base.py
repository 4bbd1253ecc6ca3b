"""The interface every frozen-LLM adapter implements: soft prompt + text in, loss / text / scores out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mint.errors import CheckpointError, MintError
from mint.llm import lora
from mint.llm.config import LLMConfig

IGNORE_INDEX = -100


class LLMInputError(MintError, ValueError):
    """A soft prompt, instruction list or candidate list handed to an LLM adapter cannot be used."""


@dataclass
class PromptRow:
    """One row's prompt ids on either side of the soft prompt."""

    before: list[int]
    after: list[int]


@dataclass
class LMBatch:
    """What the LLM runs on. `inputs_embeds` [B, L, D] is the soft prompt spliced into the embedded text
    (the encoder input of an encoder-decoder LLM), `attention_mask` [B, L] long with 1 = real position.
    `labels` (None when no responses were given) follow the Hugging Face convention: for a decoder-only
    LLM they are aligned with the input positions ([B, L], the logit at t predicts the label at t + 1);
    for an encoder-decoder LLM they are the decoder targets [B, T]. Every position that is not a response
    or end-of-sequence token is `IGNORE_INDEX`. `position_ids` [B, L] count real positions only (decoder-
    only; None for encoder-decoder). `shared_prefix`: how many leading columns hold the same text tokens
    in every row (a chat template's system turn, right padding), which the LLM may run once for all rows.
    """

    inputs_embeds: Tensor
    attention_mask: Tensor
    labels: Tensor | None
    position_ids: Tensor | None = None
    shared_prefix: int = 0


@dataclass
class LMOutput:
    """`loss`: float32 scalar, the mean negative log-likelihood over all response (+ end-of-sequence)
    tokens of the batch; `tokens`: how many there are (long scalar), what a data-parallel caller needs to
    turn per-process means into the global batch's (see `mint.distributed.global_token_share`)."""

    loss: Tensor
    tokens: Tensor


@dataclass
class TargetLogits:
    """The LLM's logits where a target is predicted, and nowhere else: `logits` [K, V] for the K targets of
    `targets` [N, T] that are not `IGNORE_INDEX`, in row-major order (row 0's targets first)."""

    logits: Tensor
    targets: Tensor


def target_logprobs(predicted: TargetLogits) -> tuple[Tensor, Tensor]:
    """Log-probability (float32) of each target, zero where the target is `IGNORE_INDEX`; and the mask of
    real targets. Both [N, T]."""
    targets = predicted.targets
    mask = targets != IGNORE_INDEX
    selected = torch.log_softmax(predicted.logits.float(), dim=-1)
    picked = torch.zeros(targets.shape, dtype=selected.dtype, device=selected.device)
    picked[mask] = selected.gather(-1, targets[mask].unsqueeze(-1)).squeeze(-1)
    return picked, mask


class LLMAdapter(nn.Module, ABC):
    """A frozen Hugging Face LLM fed a soft prompt `[B, Nq, hidden_size]` followed by an instruction.

    Rows may hold soft prompts of different lengths (a recording read as several windows): every method
    that takes a soft prompt takes an optional `prompt_mask` [B, Nq] bool, True where a row's slot is
    real. Each row gets only its real slots, in order, so a row is laid out exactly as it would be alone.

    The LLM never requires grad and stays in eval mode whatever `train()` is called with, so a parent's
    `.train()` leaves it alone; gradients still flow through it to the soft prompt. With `config.lora`
    the LLM is wrapped with peft LoRA adapters: they alone are trainable, and their dropout follows
    `train()`. Subclasses lay out the batch (`build_batch`) and align logits with targets (`_predict`).
    """

    is_encoder_decoder: bool
    # Where a padded batch gets its padding when nothing else is asked for, in training and in generation.
    training_padding_side = "right"
    generation_padding_side = "right"

    def __init__(self, model: nn.Module, tokenizer: Any, config: LLMConfig) -> None:
        super().__init__()
        if tokenizer.eos_token_id is None:
            raise CheckpointError(f"{config.name_or_path}: the tokenizer has no end-of-sequence token")
        if tokenizer.pad_token_id is None:
            raise CheckpointError(f"{config.name_or_path}: the tokenizer has no padding token")
        self.config = config
        self.tokenizer = tokenizer
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        self.llm = lora.add_lora(model, config) if config.lora else model
        self.hidden_size = int(model.get_input_embeddings().embedding_dim)
        self.eval()

    @property
    def model(self) -> nn.Module:
        """The transformers model itself (LoRA layers, when on, are injected into it in place)."""
        return self.llm.get_base_model() if self.config.lora else self.llm

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    def train(self, mode: bool = True) -> LLMAdapter:
        # The frozen LLM keeps eval behaviour (no dropout); only LoRA dropout may follow the caller.
        super().train(False)
        if self.config.lora:
            lora.set_dropout_mode(self.llm, mode)
        return self

    # ----- text to ids -----

    def _instruction_ids(self, instructions: Sequence[str]) -> list[list[int]]:
        """Instruction tokens with the tokenizer's own prompt markers (e.g. T5's `</s>`, Llama's `<s>`)."""
        encoded = self.tokenizer(
            list(instructions),
            add_special_tokens=True,
            truncation=True,
            max_length=self.config.max_instruction_length,
        )
        return [list(ids) for ids in encoded["input_ids"]]

    def _prompt_rows(self, instructions: Sequence[str]) -> list[PromptRow]:
        """Each row's text around the soft prompt. By default the soft prompt comes first, then the
        instruction with the tokenizer's markers (the InstructBLIP layout)."""
        return [PromptRow(before=[], after=ids) for ids in self._instruction_ids(instructions)]

    def _response_ids(self, responses: Sequence[str]) -> list[list[int]]:
        """Response tokens, cut to leave room for the end-of-sequence token that closes each of them."""
        encoded = self.tokenizer(
            list(responses),
            add_special_tokens=False,
            truncation=True,
            max_length=self.config.max_response_length - 1,
        )
        eos = self.tokenizer.eos_token_id
        return [[*ids, eos] for ids in encoded["input_ids"]]

    def _layout(
        self, queries: list[int], rows: list[PromptRow], padding_side: str
    ) -> tuple[Tensor, Tensor, Tensor, list[int]]:
        """Lay out each row as its `before` ids, its `queries[row]` soft-prompt slots and its `after` ids,
        padded to the longest row on `padding_side`. Returns ids [B, L] (pad id in padding, a placeholder
        id in soft slots), the soft slots [B, L] bool, the attention mask [B, L] long, and where each row's
        first real position is."""
        if padding_side not in ("left", "right"):
            raise LLMInputError(f"padding_side: expected 'left' or 'right', got {padding_side!r}")
        lengths = [len(row.before) + count + len(row.after) for row, count in zip(rows, queries, strict=True)]
        width = max(lengths)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        # A soft slot's embedding is replaced, so any id will do but the pad id: transformers' generate drops
        # an all-ones attention mask, and GPT-2 then warns that a row starting with the pad id may be padded.
        placeholder = 1 if pad == 0 else 0
        soft_slots = torch.zeros((len(rows), width), dtype=torch.bool)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        starts = []
        for index, (row, count, length) in enumerate(zip(rows, queries, lengths, strict=True)):
            start = width - length if padding_side == "left" else 0
            soft = start + len(row.before)
            ids[index, start:soft] = torch.tensor(row.before, dtype=torch.long)
            soft_slots[index, soft : soft + count] = True
            ids[index, soft : soft + count] = placeholder
            ids[index, soft + count : start + length] = torch.tensor(row.after, dtype=torch.long)
            mask[index, start : start + length] = 1
            starts.append(start)
        return ids.to(self.device), soft_slots.to(self.device), mask.to(self.device), starts

    @staticmethod
    def _prompt_lengths(soft_prompt: Tensor, prompt_mask: Tensor | None) -> list[int]:
        """How many real soft-prompt slots each row has."""
        if prompt_mask is None:
            return [soft_prompt.shape[1]] * soft_prompt.shape[0]
        return [int(count) for count in prompt_mask.sum(-1)]

    @staticmethod
    def _real_slots(soft_prompt: Tensor, prompt_mask: Tensor | None) -> Tensor:
        """The real soft-prompt vectors [n, D], row by row, in order."""
        if prompt_mask is None:
            return soft_prompt.reshape(-1, soft_prompt.shape[-1])
        return soft_prompt[prompt_mask.to(soft_prompt.device)]

    def _embed(
        self, ids: Tensor, soft_slots: Tensor, soft_prompt: Tensor, prompt_mask: Tensor | None
    ) -> Tensor:
        """Embed `ids` [B, L] and put each row's real soft-prompt slots, in order, where `soft_slots` [B, L]
        is True."""
        embeddings = self.model.get_input_embeddings()(ids)
        values = self._real_slots(soft_prompt, prompt_mask).to(dtype=embeddings.dtype)
        return embeddings.masked_scatter(soft_slots.unsqueeze(-1), values)

    def _check(
        self,
        soft_prompt: Tensor,
        instructions: Sequence[str],
        responses: Sequence[str] | None,
        prompt_mask: Tensor | None = None,
    ) -> None:
        if (
            not isinstance(soft_prompt, Tensor)
            or soft_prompt.dim() != 3
            or not soft_prompt.is_floating_point()
        ):
            raise LLMInputError(
                "soft_prompt: expected a float tensor [batch, queries, hidden], got "
                f"{getattr(soft_prompt, 'dtype', type(soft_prompt).__name__)} "
                f"{tuple(getattr(soft_prompt, 'shape', ()))}"
            )
        batch, queries, width = soft_prompt.shape
        if batch == 0 or queries == 0:
            raise LLMInputError(f"soft_prompt: empty batch or no queries, shape {tuple(soft_prompt.shape)}")
        if width != self.hidden_size:
            raise LLMInputError(f"soft_prompt: last dimension is {width}; the LLM expects {self.hidden_size}")
        if prompt_mask is not None and (
            not isinstance(prompt_mask, Tensor)
            or prompt_mask.dtype != torch.bool
            or tuple(prompt_mask.shape) != (batch, queries)
            or not bool(prompt_mask.any(-1).all())
        ):
            raise LLMInputError(
                f"prompt_mask: expected a bool tensor {(batch, queries)} with a real slot in every row, got "
                f"{getattr(prompt_mask, 'dtype', type(prompt_mask).__name__)} {tuple(getattr(prompt_mask, 'shape', ()))}"
            )
        for name, texts in (("instructions", instructions), ("responses", responses)):
            if texts is None:
                continue
            if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
                raise LLMInputError(f"{name}: expected a list of strings, got {texts!r}")
            if len(texts) != batch:
                raise LLMInputError(f"{name}: has {len(texts)} entries for a soft prompt batch of {batch}")

    # ----- what subclasses provide -----

    @abstractmethod
    def build_batch(
        self,
        soft_prompt: Tensor,
        instructions: Sequence[str],
        responses: Sequence[str] | None = None,
        padding_side: str | None = None,
        prompt_mask: Tensor | None = None,
    ) -> LMBatch:
        """Tokenise, pad (`padding_side`: "left" or "right"; None = the training side) and embed."""

    @abstractmethod
    def _predict(self, batch: LMBatch) -> TargetLogits:
        """Run the LLM on a batch with labels: the logits at its target positions."""

    # ----- training -----

    def forward(
        self,
        soft_prompt: Tensor,
        instructions: Sequence[str],
        responses: Sequence[str],
        prompt_mask: Tensor | None = None,
    ) -> LMOutput:
        """Mean negative log-likelihood of the responses (+ end-of-sequence) given soft prompt + instruction."""
        self._check(soft_prompt, instructions, responses, prompt_mask)
        batch = self.build_batch(soft_prompt, instructions, responses, prompt_mask=prompt_mask)
        picked, mask = target_logprobs(self._predict(batch))
        tokens = mask.sum()
        return LMOutput(loss=-picked.sum() / tokens, tokens=tokens)

    # ----- generation -----

    def generate_ids(
        self,
        soft_prompt: Tensor,
        instructions: Sequence[str],
        max_new_tokens: int = 30,
        num_beams: int = 1,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        min_new_tokens: int = 0,
        length_penalty: float = 1.0,
        use_cache: bool = True,
        prompt_mask: Tensor | None = None,
    ) -> Tensor:
        """The generated token ids only (no prompt, no decoder start token), [B, T] padded with pad id.

        Sampling uses temperature and nucleus (top-p) filtering only; the checkpoint's own generation
        defaults (top-k, repetition penalties, ...) are switched off so the arguments mean the same for
        every LLM.
        """
        self._check(soft_prompt, instructions, None, prompt_mask)
        if max_new_tokens < 1 or not 0 <= min_new_tokens <= max_new_tokens:
            raise LLMInputError(
                f"max_new_tokens/min_new_tokens: expected 0 <= min ({min_new_tokens}) <= max ({max_new_tokens}), max >= 1"
            )
        if num_beams < 1 or temperature <= 0 or not 0 < top_p <= 1:
            raise LLMInputError(
                f"num_beams >= 1, temperature > 0 and top_p in (0, 1] expected; got {num_beams}, "
                f"{temperature}, {top_p}"
            )
        from transformers import GenerationConfig

        settings = dict(
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            num_beams=num_beams,
            do_sample=do_sample,
            length_penalty=length_penalty,
            use_cache=use_cache,
            num_return_sequences=1,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            eos_token_id=self._stop_ids(),
            pad_token_id=self.tokenizer.pad_token_id,
        )
        if do_sample:
            settings.update(temperature=temperature, top_p=top_p, top_k=0)
        settings.update(self._generation_extras())
        with torch.no_grad():
            return self._generate(soft_prompt, instructions, GenerationConfig(**settings), prompt_mask)

    def generate(
        self,
        soft_prompt: Tensor,
        instructions: Sequence[str],
        max_new_tokens: int = 30,
        num_beams: int = 1,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        min_new_tokens: int = 0,
        length_penalty: float = 1.0,
        use_cache: bool = True,
        prompt_mask: Tensor | None = None,
    ) -> list[str]:
        """Decoded responses, special tokens dropped and whitespace stripped (see `generate_ids`)."""
        ids = self.generate_ids(
            soft_prompt,
            instructions,
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            do_sample=do_sample,
            temperature=temperature,
            top_p=top_p,
            min_new_tokens=min_new_tokens,
            length_penalty=length_penalty,
            use_cache=use_cache,
            prompt_mask=prompt_mask,
        )
        return [text.strip() for text in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def _stop_ids(self) -> list[int]:
        """The tokenizer's end-of-sequence token (what training appends) plus the checkpoint's own stops."""
        stops = [self.tokenizer.eos_token_id]
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        for token in configured if isinstance(configured, list) else [configured]:
            if token is not None and token not in stops:
                stops.append(int(token))
        return stops

    def _generation_extras(self) -> dict:
        return {}

    @abstractmethod
    def _generate(
        self,
        soft_prompt: Tensor,
        instructions: Sequence[str],
        generation_config: Any,
        prompt_mask: Tensor | None = None,
    ) -> Tensor:
        """Run `generate` of the transformers model; the new token ids only, [B, T]."""

    # ----- rank classification -----

    def score(
        self,
        soft_prompt: Tensor,
        instructions: Sequence[str],
        candidates: Sequence[Sequence[str]] | Sequence[str],
        normalise: bool = False,
        rows_per_pass: int | None = None,
        prompt_mask: Tensor | None = None,
    ) -> Tensor:
        """Log-likelihood [B, C] (float32) of each candidate response given soft prompt + instruction.

        `candidates` is one list per row (all of the same length C) or a single list shared by every row.
        The score is the sum of the token log-probabilities of the candidate and its closing end-of-sequence
        token (so a candidate that is only the start of a likelier answer is not favoured);
        `normalise=True` divides it by that token count. `rows_per_pass` bounds how many prompt rows (each
        expanded over its C candidates) run through the LLM at once; None runs the whole batch. Gradients
        are kept (call it under `torch.no_grad()` when only ranking).
        """
        self._check(soft_prompt, instructions, None, prompt_mask)
        per_row = self._candidate_table(candidates, len(instructions))
        step = rows_per_pass or len(per_row)
        if step < 1:
            raise LLMInputError(f"rows_per_pass: expected a positive integer or None, got {rows_per_pass}")
        totals, counts = [], []
        for start in range(0, len(per_row), step):
            stop = start + step
            total, count = self._candidate_logprobs(
                soft_prompt[start:stop],
                instructions[start:stop],
                per_row[start:stop],
                None if prompt_mask is None else prompt_mask[start:stop],
            )
            totals.append(total)
            counts.append(count)
        total, count = torch.cat(totals), torch.cat(counts)
        return total / count if normalise else total

    @staticmethod
    def _candidate_table(candidates: Sequence[Sequence[str]] | Sequence[str], rows: int) -> list[list[str]]:
        if isinstance(candidates, str) or len(candidates) == 0:
            raise LLMInputError(f"candidates: expected a non-empty list, got {candidates!r}")
        if all(isinstance(candidate, str) for candidate in candidates):
            return [list(candidates)] * rows
        table = [list(row) for row in candidates]
        if len(table) != rows:
            raise LLMInputError(f"candidates: has {len(table)} rows for a batch of {rows}")
        width = len(table[0])
        for index, row in enumerate(table):
            if len(row) != width or width == 0 or not all(isinstance(text, str) for text in row):
                raise LLMInputError(
                    f"candidates[{index}]: expected {max(width, 1)}+ strings like row 0 (every row needs the "
                    f"same number of candidates), got {row!r}"
                )
        return table

    def _candidate_logprobs(
        self,
        soft_prompt: Tensor,
        instructions: Sequence[str],
        candidates: list[list[str]],
        prompt_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Summed log-probability and token count of every candidate, [b, C] each."""
        width = len(candidates[0])
        batch = self.build_batch(
            soft_prompt.repeat_interleave(width, dim=0),
            [text for text in instructions for _ in range(width)],
            [text for row in candidates for text in row],
            prompt_mask=None if prompt_mask is None else prompt_mask.repeat_interleave(width, dim=0),
        )
        picked, mask = target_logprobs(self._predict(batch))
        return picked.sum(-1).view(-1, width), mask.sum(-1).view(-1, width).float()

    # ----- LoRA -----

    def trainable_state(self) -> dict[str, Tensor]:
        """The LoRA tensors (detached, sharing storage), keyed as in `state_dict()`; empty without LoRA."""
        return {
            name: parameter.detach() for name, parameter in self.named_parameters() if parameter.requires_grad
        }

    def load_trainable_state(self, state: dict[str, Tensor]) -> None:
        """Copy tensors from `trainable_state()` of an adapter built with the same config."""
        own = self.trainable_state()
        if set(state) != set(own):
            missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
            raise LLMInputError(
                f"trainable state: keys differ from this adapter's (missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        with torch.no_grad():
            for name, parameter in own.items():
                parameter.copy_(state[name])

    def save_adapter(self, directory: str) -> None:
        """Write only the LoRA adapter (peft's `adapter_config.json` + `adapter_model.safetensors`)."""
        lora.save(self._lora_model("save_adapter"), directory)

    def load_adapter(self, directory: str) -> None:
        """Load LoRA weights written by `save_adapter` of an adapter with the same LoRA settings."""
        lora.load(self._lora_model("load_adapter"), directory)

    def _lora_model(self, action: str) -> nn.Module:
        if not self.config.lora:
            raise LLMInputError(
                f"{action}: this adapter was built with llm.lora=false, so it has no LoRA weights"
            )
        return self.llm
