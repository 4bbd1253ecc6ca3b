"""GGUF causal LLM file -> dequantised Hugging Face directory (config, safetensors, tokenizer).

Hugging Face `transformers` reads a GGUF file (with the `gguf` package) for the architectures it maps
(Llama, Mistral, Qwen2, Phi-3, GPT-2, ...), dequantising every tensor to float32 and rebuilding the
tokenizer and chat template from the file's metadata. That takes seconds to minutes, so it is done once
and the result saved in the ordinary layout. The loaded model remembers that it came from GGUF and
refuses `save_pretrained`; its weights are plain tensors by then, so they are saved directly.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from mint.errors import CheckpointError

WEIGHTS_NAME = "model.safetensors"


def convert_gguf(gguf_file: Path, output_dir: Path) -> None:
    """Write the dequantised float32 model, its config, generation config and tokenizer into `output_dir`."""
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    # A GGUF file carries weights and tokenizer only, never code to run.
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32, trust_remote_code=False
        )
    except ImportError as error:
        raise CheckpointError(f"{gguf_file}: reading GGUF needs the `gguf` package ({error})") from error
    except (OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"{gguf_file}: cannot load it as a causal LLM: {error}") from error
    config = copy.deepcopy(model.config)
    # Only a marker of where the weights came from: they are dequantised float32 now.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(output_dir)
    model.generation_config.save_pretrained(output_dir)
    # save_model stores tied weights (the output head that shares the token embeddings) once.
    save_model(model, str(output_dir / WEIGHTS_NAME), metadata={"format": "pt"})
    tokenizer.save_pretrained(output_dir)
