"""GGUF -> Hugging Face: SmolLM2-135M-Instruct (Q4_1) dequantised once, loaded through `load_llm`.

The weights are checked against the `gguf` package's own reader and dequantiser, independent of
transformers' GGUF loading and of our save and reload; the model as a whole is checked by asking it a
question.
"""

from __future__ import annotations

import pytest
import torch
from weights_testing import require_weights

from mint.errors import ConfigError
from mint.llm import LLMConfig, load_llm
from mint.weights import resolve_weights
from mint.weights.registry import file_path
from mint_testing import require_module

# Token-by-token generation is many small operations: one thread avoids the cost of waking a second one
# for each (33x slower on two busy cores).
pytestmark = pytest.mark.usefixtures("single_thread")

# GGUF tensor -> the Hugging Face weight it becomes: every quantisation type in the file (Q8_0 embeddings,
# Q4_1 projections, F32 norms), first and last layer. The q/k projections are left out: their rows are
# reordered for the rotary embedding on the way in, so they are not equal element by element.
SAME_TENSORS = {
    "token_embd.weight": "model.embed_tokens.weight",
    "blk.0.ffn_down.weight": "model.layers.0.mlp.down_proj.weight",
    "blk.0.attn_v.weight": "model.layers.0.self_attn.v_proj.weight",
    "blk.29.ffn_gate.weight": "model.layers.29.mlp.gate_proj.weight",
    "blk.29.attn_output.weight": "model.layers.29.self_attn.o_proj.weight",
    "blk.29.attn_norm.weight": "model.layers.29.input_layernorm.weight",
    "output_norm.weight": "model.norm.weight",
}


@pytest.fixture(scope="module")
def gguf_file():
    return file_path(require_weights("smollm2-135m-instruct").files[0])


@pytest.fixture(scope="module")
def llm(smollm2_dir):
    return load_llm(LLMConfig(name_or_path="weights:smollm2-135m-instruct"))


def test_answers_a_factual_question(llm) -> None:
    tokenizer, model = llm.tokenizer, llm.model
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        output = model.generate(**prompt, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(output[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer, answer


def test_weights_equal_the_gguf_packages_dequantisation(llm, gguf_file) -> None:
    gguf = require_module("gguf", "pip install gguf (the weights extra)")
    from gguf.quants import dequantize

    tensors = {tensor.name: tensor for tensor in gguf.GGUFReader(gguf_file).tensors}
    weights = dict(llm.model.named_parameters())
    types = set()
    for gguf_name, hf_name in SAME_TENSORS.items():
        tensor = tensors[gguf_name]
        types.add(tensor.tensor_type.name)
        expected = torch.from_numpy(dequantize(tensor.data, tensor.tensor_type).copy())
        assert torch.equal(weights[hf_name], expected.reshape(weights[hf_name].shape)), hf_name
    assert types == {"Q8_0", "Q4_1", "F32"}
    # The output head shares the embeddings, as in the GGUF file (which has no separate output tensor).
    assert "output.weight" not in tensors
    assert llm.model.lm_head.weight.data_ptr() == llm.model.model.embed_tokens.weight.data_ptr()


def test_a_gguf_path_resolves_to_the_named_conversion(smollm2_dir, gguf_file) -> None:
    assert resolve_weights(str(gguf_file), "llm") == str(smollm2_dir)


def test_a_gguf_file_is_not_an_audio_encoder(gguf_file) -> None:
    with pytest.raises(
        ConfigError, match=r"encoder.name_or_path=.*GGUF file, which only llm.name_or_path takes"
    ):
        resolve_weights(str(gguf_file), "encoder")
