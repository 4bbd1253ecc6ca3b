"""Optional LoRA adapters on the frozen LLM, through peft (imported only when LoRA is on)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from mint.errors import CheckpointError, ConfigError
from mint.llm.config import LLMConfig

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


def target_modules(model: nn.Module, config: LLMConfig) -> list[str]:
    """The configured module names, else peft's default for the architecture (its attention q/v projections)."""
    if config.lora_target_modules is not None:
        return list(config.lora_target_modules)
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    model_type = getattr(model.config, "model_type", None)
    if model_type not in DEFAULTS:
        raise ConfigError(
            f"llm.lora_target_modules: no default is known for model_type {model_type!r}; "
            "list the linear layers to adapt (e.g. [q_proj, v_proj])"
        )
    return list(DEFAULTS[model_type])


def add_lora(model: nn.Module, config: LLMConfig) -> nn.Module:
    """Wrap `model` (already frozen) in a peft model whose LoRA weights alone require grad."""
    from peft import LoraConfig, get_peft_model
    from transformers.pytorch_utils import Conv1D

    targets = target_modules(model, config)
    # GPT-2 style Conv1D layers store their weight transposed; peft must be told so.
    transposed = any(
        isinstance(module, Conv1D) and name.rsplit(".", 1)[-1] in targets
        for name, module in model.named_modules()
    )
    settings = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        fan_in_fan_out=transposed,
        bias="none",
    )
    try:
        return get_peft_model(model, settings)
    except ValueError as error:
        raise ConfigError(f"llm.lora_target_modules: peft cannot adapt this model: {error}") from error


def set_dropout_mode(peft_model: nn.Module, mode: bool) -> None:
    """Switch only the LoRA dropout layers between training and eval behaviour."""
    from peft.tuners.lora import LoraLayer

    for module in peft_model.modules():
        if isinstance(module, LoraLayer):
            module.lora_dropout.train(mode)


def save(peft_model: Any, directory: str | Path) -> None:
    """peft's own format: `adapter_config.json` + `adapter_model.safetensors`, nothing of the base model."""
    peft_model.save_pretrained(str(directory), safe_serialization=True)


def load(peft_model: Any, directory: str | Path) -> None:
    """Load adapter weights saved by `save` into a peft model with the same LoRA settings."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = Path(directory)
    for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder}: no {name}; expected a LoRA adapter written by save_adapter")
    saved = LoraConfig.from_pretrained(str(folder))
    own = peft_model.peft_config["default"]
    for field in ("r", "lora_alpha", "target_modules"):
        if getattr(saved, field) != getattr(own, field):
            raise CheckpointError(
                f"{folder / ADAPTER_CONFIG}: {field} is {getattr(saved, field)!r}, but this adapter was built "
                f"with {getattr(own, field)!r}"
            )
    weights = load_file(str(folder / ADAPTER_WEIGHTS))
    expected = set(get_peft_model_state_dict(peft_model))
    if set(weights) != expected:
        missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
        raise CheckpointError(
            f"{folder / ADAPTER_WEIGHTS}: LoRA tensors differ from this model's "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    set_peft_model_state_dict(peft_model, weights)
