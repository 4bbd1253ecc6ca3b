"""Batch layout: where the soft prompt, instruction, response and padding go, checked against a per-row
construction from the word vocabulary (not through the Hugging Face tokenizer)."""

from __future__ import annotations

import pytest
import torch
from llm_testing import EOS, HIDDEN, PAD, VOCAB, load_tiny, prompt_ids, soft_prompt, words

from mint.errors import CheckpointError, ConfigError
from mint.llm import IGNORE_INDEX, CausalAdapter, LLMConfig, LLMInputError, Seq2SeqAdapter, load_llm

INSTRUCTIONS = ["describe the sound", "what is this", "name the source in a few words"]
RESPONSES = ["a dog barks", "rain falls near the car", "cow"]
QUERIES = 3


@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_causal_layout_matches_per_row_construction(checkpoints, name, padding_side):
    adapter = load_tiny(checkpoints[name])
    prompt = soft_prompt(3, QUERIES)
    batch = adapter.build_batch(prompt, INSTRUCTIONS, RESPONSES, padding_side=padding_side)

    rows = []
    for instruction, response in zip(INSTRUCTIONS, RESPONSES, strict=True):
        text = prompt_ids(name, instruction)
        answer = [*words(response), EOS]
        ids = [None] * QUERIES + text + answer
        labels = [IGNORE_INDEX] * (QUERIES + len(text)) + answer
        rows.append((ids, labels))
    width = max(len(ids) for ids, _ in rows)
    assert batch.labels.shape == batch.attention_mask.shape == (3, width)
    embeddings = adapter.model.get_input_embeddings().weight
    for row, (ids, labels) in enumerate(rows):
        pad = width - len(ids)
        offset = pad if padding_side == "left" else 0
        real = slice(offset, offset + len(ids))
        expected_labels = [IGNORE_INDEX] * width
        expected_labels[real] = labels
        assert batch.labels[row].tolist() == expected_labels
        expected_mask = [0] * width
        expected_mask[real] = [1] * len(ids)
        assert batch.attention_mask[row].tolist() == expected_mask
        assert batch.position_ids[row, real].tolist() == list(range(len(ids)))
        torch.testing.assert_close(batch.inputs_embeds[row, offset : offset + QUERIES], prompt[row])
        text_ids = torch.tensor(ids[QUERIES:])
        torch.testing.assert_close(
            batch.inputs_embeds[row, offset + QUERIES : offset + len(ids)], embeddings[text_ids]
        )


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_seq2seq_layout_matches_per_row_construction(checkpoints, padding_side):
    adapter = load_tiny(checkpoints["t5"])
    prompt = soft_prompt(3, QUERIES)
    batch = adapter.build_batch(prompt, INSTRUCTIONS, RESPONSES, padding_side=padding_side)
    assert batch.position_ids is None

    encoder_rows = [prompt_ids("t5", instruction) for instruction in INSTRUCTIONS]
    width = QUERIES + max(map(len, encoder_rows))
    label_rows = [[*words(response), EOS] for response in RESPONSES]
    label_width = max(map(len, label_rows))
    embeddings = adapter.model.get_input_embeddings().weight
    for row, (text, labels) in enumerate(zip(encoder_rows, label_rows, strict=True)):
        offset = width - QUERIES - len(text) if padding_side == "left" else 0
        expected_mask = [0] * width
        expected_mask[offset : offset + QUERIES + len(text)] = [1] * (QUERIES + len(text))
        assert batch.attention_mask[row].tolist() == expected_mask
        assert batch.labels[row].tolist() == labels + [IGNORE_INDEX] * (label_width - len(labels))
        torch.testing.assert_close(batch.inputs_embeds[row, offset : offset + QUERIES], prompt[row])
        torch.testing.assert_close(
            batch.inputs_embeds[row, offset + QUERIES : offset + QUERIES + len(text)],
            embeddings[torch.tensor(text)],
        )


def test_lengths_are_cut_keeping_markers_and_eos(checkpoints):
    adapter = load_tiny(checkpoints["llama"], max_instruction_length=4, max_response_length=3)
    batch = adapter.build_batch(soft_prompt(1, 2), ["name the source in a few words"], ["a dog barks loud"])
    # <s> + three instruction words; two response words + </s>.
    assert batch.labels[0].tolist() == [IGNORE_INDEX] * 6 + [VOCAB["a"], VOCAB["dog"], EOS]
    adapter = load_tiny(checkpoints["t5"], max_instruction_length=4, max_response_length=2)
    batch = adapter.build_batch(soft_prompt(1, 2), ["name the source in a few words"], ["a dog barks loud"])
    assert batch.attention_mask.shape[1] == 2 + 4
    assert batch.labels[0].tolist() == [VOCAB["a"], EOS]


def test_kind_is_detected_and_checked(checkpoints):
    assert isinstance(load_tiny(checkpoints["t5"]), Seq2SeqAdapter)
    assert isinstance(load_tiny(checkpoints["gpt2"]), CausalAdapter)
    assert load_tiny(checkpoints["t5"]).is_encoder_decoder
    assert not load_tiny(checkpoints["llama"], kind="causal").is_encoder_decoder
    with pytest.raises(ConfigError, match=r"llm\.kind='causal'.*seq2seq"):
        load_tiny(checkpoints["t5"], kind="causal")


def test_frozen_eval_and_padding_token(checkpoints):
    adapter = load_tiny(checkpoints["gpt2"])
    assert adapter.hidden_size == HIDDEN
    # GPT-2's tokenizer has no pad token: eos stands in, and the vocabulary does not grow.
    assert adapter.tokenizer.pad_token_id == EOS
    assert adapter.model.get_input_embeddings().num_embeddings == len(VOCAB)
    assert not any(parameter.requires_grad for parameter in adapter.parameters())
    parent = torch.nn.Sequential(torch.nn.Linear(HIDDEN, HIDDEN), adapter)
    parent.train()
    assert parent[0].training
    assert not any(module.training for module in adapter.modules())
    assert load_tiny(checkpoints["llama"]).tokenizer.pad_token_id == PAD


def test_bad_config_and_paths(tmp_path):
    with pytest.raises(ConfigError, match=r"llm\.name_or_path"):
        load_llm(LLMConfig())
    with pytest.raises(ConfigError, match=r"llm\.dtype"):
        LLMConfig(name_or_path="x", dtype="float16").validate()
    with pytest.raises(ConfigError, match=r"llm\.max_response_length"):
        LLMConfig(name_or_path="x", max_response_length=1).validate()
    with pytest.raises(ConfigError, match=r"llm\.lora_dropout"):
        LLMConfig(name_or_path="x", lora_dropout=1.0).validate()
    with pytest.raises(ConfigError, match=r"llm\.lora_target_modules"):
        LLMConfig(name_or_path="x", lora_target_modules=[]).validate()
    with pytest.raises(CheckpointError, match="cannot load a model config"):
        load_llm(LLMConfig(name_or_path=str(tmp_path / "missing")))


def test_bad_inputs_are_named(checkpoints):
    adapter = load_tiny(checkpoints["llama"])
    with pytest.raises(LLMInputError, match="soft_prompt: last dimension is 7"):
        adapter(torch.zeros(1, 2, 7), ["what"], ["a dog"])
    with pytest.raises(LLMInputError, match="soft_prompt: expected a float tensor"):
        adapter(torch.zeros(2, HIDDEN), ["what"], ["a dog"])
    with pytest.raises(LLMInputError, match="responses: has 1 entries for a soft prompt batch of 2"):
        adapter(soft_prompt(2), ["what", "what"], ["a dog"])
    with pytest.raises(LLMInputError, match="instructions: expected a list of strings"):
        adapter.generate(soft_prompt(1), "what")
    with pytest.raises(LLMInputError, match="candidates\\[1\\]"):
        adapter.score(soft_prompt(2), ["what", "what"], [["a", "b"], ["a"]])
    with pytest.raises(LLMInputError, match="padding_side"):
        adapter.build_batch(soft_prompt(1), ["what"], ["a"], padding_side="middle")


# A chat template in the style of instruction-tuned checkpoints, in the tiny vocabulary's words.
CHAT_TEMPLATE = (
    "{% for m in messages %}<s> {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<s> answer{% endif %}"
)


@pytest.fixture
def chat_llama(checkpoints, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoints["llama"])
    tokenizer.chat_template = CHAT_TEMPLATE
    folder = tmp_path / "chat-llama"
    for file in checkpoints["llama"].iterdir():
        (folder / file.name).parent.mkdir(exist_ok=True)
        (folder / file.name).write_bytes(file.read_bytes())
    tokenizer.save_pretrained(folder)
    return folder


def test_chat_format_puts_the_soft_prompt_inside_the_user_turn(chat_llama):
    adapter = load_tiny(chat_llama, max_instruction_length=2)
    assert adapter.chat  # "auto" takes the template the tokenizer has
    prompt = soft_prompt(2, QUERIES)
    batch = adapter.build_batch(prompt, ["describe the sound", "what"], ["a dog barks", "cow"])
    # <s> [soft prompt] instruction (cut to 2 words; the template around it is whole) </s> <s> answer,
    # then the response and its end-of-sequence token.
    turn_end = [EOS, VOCAB["<s>"], VOCAB["answer"]]
    rows = [
        ([VOCAB["<s>"]], [*words("describe the"), *turn_end], [*words("a dog barks"), EOS]),
        ([VOCAB["<s>"]], [*words("what"), *turn_end], [*words("cow"), EOS]),
    ]
    width = max(len(before) + QUERIES + len(after) + len(answer) for before, after, answer in rows)
    embeddings = adapter.model.get_input_embeddings().weight
    for row, (before, after, answer) in enumerate(rows):
        length = len(before) + QUERIES + len(after) + len(answer)
        assert batch.attention_mask[row].tolist() == [1] * length + [0] * (width - length)
        soft = len(before)
        torch.testing.assert_close(batch.inputs_embeds[row, :soft], embeddings[torch.tensor(before)])
        torch.testing.assert_close(batch.inputs_embeds[row, soft : soft + QUERIES], prompt[row])
        text = torch.tensor([*after, *answer])
        torch.testing.assert_close(batch.inputs_embeds[row, soft + QUERIES : length], embeddings[text])
        expected = [IGNORE_INDEX] * (soft + QUERIES + len(after)) + answer
        assert batch.labels[row].tolist() == expected + [IGNORE_INDEX] * (width - length)


def test_chat_format_system_turn_and_plain_override(chat_llama):
    adapter = load_tiny(chat_llama, system_prompt="name the source")
    row = adapter._prompt_rows(["what"])[0]
    assert row.before == [VOCAB["<s>"], *words("name the source"), EOS, VOCAB["<s>"]]
    plain = load_tiny(chat_llama, prompt_format="plain")
    assert not plain.chat and plain._prompt_rows(["what"])[0].after == prompt_ids("llama", "what")


def test_chat_format_needs_a_template(checkpoints):
    with pytest.raises(ConfigError, match="no chat template"):
        load_tiny(checkpoints["llama"], prompt_format="chat")
    with pytest.raises(ConfigError, match=r"llm\.prompt_format"):
        LLMConfig(name_or_path="x", prompt_format="fancy").validate()


def test_attention_kernel_is_a_setting(checkpoints):
    assert (
        load_tiny(checkpoints["llama"], attn_implementation="eager").model.config._attn_implementation
        == "eager"
    )
    with pytest.raises(ConfigError, match=r"llm\.attn_implementation"):
        LLMConfig(name_or_path="x", attn_implementation="fastest").validate()
