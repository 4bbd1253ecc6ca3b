"""Which frozen LLM stage 2 feeds, how its inputs are cut to length, and the optional LoRA adapters."""

from __future__ import annotations

from dataclasses import dataclass

from mint.errors import ConfigError
from mint.hardware import check_dtype_name

SEQ2SEQ = "seq2seq"
CAUSAL = "causal"
LLM_KINDS = ("auto", SEQ2SEQ, CAUSAL)
PROMPT_FORMATS = ("auto", "chat", "plain")
ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2", "flex_attention")


@dataclass(frozen=True)
class LLMConfig:
    """`name_or_path` is a local directory or a hub id. `kind="auto"` reads `is_encoder_decoder` from the
    checkpoint's config. Lengths count tokens including the special tokens the adapter adds (the
    tokenizer's own prompt markers for the instruction, the end-of-sequence token for the response).
    `lora_target_modules=None` takes peft's per-architecture default (the attention q/v projections)."""

    name_or_path: str | None = None
    kind: str = "auto"
    # "float32", "bfloat16", or "auto": bfloat16 where the hardware multiplies in it (`mint.hardware`).
    dtype: str = "float32"
    max_instruction_length: int = 64
    max_response_length: int = 64
    lora: bool = False
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] | None = None
    trust_remote_code: bool = False
    # Decoder-only LLMs: "chat" wraps the soft prompt and instruction in the tokenizer's chat template as
    # one user turn (for instruction-tuned LLMs), "plain" puts the soft prompt first and then the
    # instruction, "auto" takes "chat" when the tokenizer has a template.
    prompt_format: str = "auto"
    # The chat template's system turn; None keeps the template's own default.
    system_prompt: str | None = None
    # transformers' attention kernel for the LLM (None: transformers' choice, SDPA where it can). On CPU
    # "eager" pays: a SmolLM2-135M stage-2 step (batch 16, bf16 autocast, 2 cores) took 0.91 s against
    # SDPA's 1.55 s, most of the difference in the backward pass to the soft prompt.
    attn_implementation: str | None = None

    def validate(self, where: str = "llm") -> None:
        """Raise `ConfigError` naming the first bad field (as `<where>.<field>`)."""
        if not self.name_or_path:
            raise ConfigError(
                f"{where}.name_or_path: required (a local directory holding the LLM, or a hub id)"
            )
        if self.prompt_format not in PROMPT_FORMATS:
            raise ConfigError(
                f"{where}.prompt_format: got {self.prompt_format!r}; expected one of {PROMPT_FORMATS}"
            )
        if self.kind not in LLM_KINDS:
            raise ConfigError(f"{where}.kind: got {self.kind!r}; expected one of {LLM_KINDS}")
        if self.attn_implementation is not None and self.attn_implementation not in ATTENTION_IMPLEMENTATIONS:
            raise ConfigError(
                f"{where}.attn_implementation: got {self.attn_implementation!r}; expected null or one of "
                f"{ATTENTION_IMPLEMENTATIONS}"
            )
        check_dtype_name(self.dtype, f"{where}.dtype")
        if self.max_instruction_length < 1:
            raise ConfigError(
                f"{where}.max_instruction_length: expected a positive integer, got {self.max_instruction_length}"
            )
        # One token is the end-of-sequence marker, so a response needs room for at least one more.
        if self.max_response_length < 2:
            raise ConfigError(f"{where}.max_response_length: expected >= 2, got {self.max_response_length}")
        if self.lora_rank < 1:
            raise ConfigError(f"{where}.lora_rank: expected a positive integer, got {self.lora_rank}")
        if self.lora_alpha <= 0:
            raise ConfigError(f"{where}.lora_alpha: expected a positive number, got {self.lora_alpha}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"{where}.lora_dropout: expected within [0, 1), got {self.lora_dropout}")
        if self.lora_target_modules is not None and (
            not self.lora_target_modules
            or not all(isinstance(m, str) and m for m in self.lora_target_modules)
        ):
            raise ConfigError(
                f"{where}.lora_target_modules: expected a non-empty list of module names or null, "
                f"got {self.lora_target_modules!r}"
            )
