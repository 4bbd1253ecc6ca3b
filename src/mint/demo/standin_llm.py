"""A stand-in frozen LLM for the offline demo: a small causal LM trained on the corpus's own text.

No pretrained LLM can be downloaded in the demo's setting, so we pre-train a tiny GPT-2 on the
text the corpus uses (captions, questions, answers, instructions, and the documents of
`mint.demo.llm_corpus`), save it like any Hugging Face checkpoint, and from then on treat it exactly
as a real frozen LLM. `--llm PATH_OR_ID` replaces it.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from tqdm import tqdm
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from mint.storage import atomic_directory

SPECIAL_TOKENS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}
# BERT conventions, for a word-level Bridge-Net tokenizer: [CLS] text [SEP], pad id 0.
BERT_SPECIAL_TOKENS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}
POOL_BATCHES = 16  # batches per length-sorted pool of training texts


@dataclass(frozen=True)
class StandinLLMConfig:
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    max_positions: int = 160
    steps: int = 3000
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0


def build_word_tokenizer(texts: Sequence[str], bert_style: bool = False) -> PreTrainedTokenizerFast:
    """Word-level tokenizer (lower-cased; words and punctuation) over every word the texts use.

    `bert_style` gives BERT's special tokens and `[CLS] text [SEP]` framing, so it can serve as a
    small-vocabulary Bridge-Net tokenizer; otherwise GPT-style `<s>`/`</s>` tokens for a causal LM.
    """
    special = BERT_SPECIAL_TOKENS if bert_style else SPECIAL_TOKENS
    normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    words: set[str] = set()
    for text in texts:
        words.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    vocab = {token: index for index, token in enumerate(special.values())}
    for word in sorted(words):
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=special["unk_token"]))
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    if bert_style:
        cls, sep = special["cls_token"], special["sep_token"]
        backend.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])]
        )
    return PreTrainedTokenizerFast(tokenizer_object=backend, **special)


def train_standin_llm(
    texts: Sequence[str], out_dir: str | os.PathLike, config: StandinLLMConfig, progress: bool = True
) -> Path:
    """Pre-train a small GPT-2 on `texts` (one sequence per text) and save it with its tokenizer."""
    tokenizer = build_word_tokenizer(texts)
    torch.manual_seed(config.seed)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=config.max_positions,
            n_embd=config.hidden_size,
            n_layer=config.num_layers,
            n_head=config.num_heads,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    encoded = [
        [
            tokenizer.bos_token_id,
            *tokenizer.encode(text, add_special_tokens=False)[: config.max_positions - 2],
            tokenizer.eos_token_id,
        ]
        for text in texts
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.steps, pct_start=0.1
    )
    # Batches come from a random pool of POOL_BATCHES batches' worth of texts, sorted by length: the rows
    # of a batch have similar lengths (the texts run from two-word labels to 60-token documents, and
    # random batches were mostly padding) while each batch still mixes texts from the whole corpus.
    order = random.Random(config.seed)
    size = min(config.batch_size, len(encoded))
    batches: list[list[list[int]]] = []
    model.train()
    for _ in tqdm(range(config.steps), desc="stand-in LLM", disable=not progress):
        if not batches:
            pool = sorted(order.sample(encoded, min(len(encoded), size * POOL_BATCHES)), key=len)
            batches = [pool[start : start + size] for start in range(0, len(pool) - size + 1, size)]
            order.shuffle(batches)
        rows = batches.pop()
        longest = max(len(row) for row in rows)
        ids = torch.full((len(rows), longest), tokenizer.pad_token_id)
        labels = torch.full((len(rows), longest), -100)
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            labels[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        schedule.step()
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    with atomic_directory(out_dir) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    return Path(out_dir)
