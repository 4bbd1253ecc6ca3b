"""Frozen LLMs for stage 2: a soft prompt from the Bridge-Net plus instruction text in, loss, generated
text and candidate scores out, for encoder-decoder and decoder-only Hugging Face models alike."""

from mint.llm.base import IGNORE_INDEX, LLMAdapter, LLMInputError, LMBatch, LMOutput
from mint.llm.causal import CausalAdapter
from mint.llm.config import LLMConfig
from mint.llm.factory import load_llm
from mint.llm.seq2seq import Seq2SeqAdapter

__all__ = [
    "IGNORE_INDEX",
    "CausalAdapter",
    "LLMAdapter",
    "LLMConfig",
    "LLMInputError",
    "LMBatch",
    "LMOutput",
    "Seq2SeqAdapter",
    "load_llm",
]
