"""The Bridge-Net: learnable queries and text through shared BERT layers, queries cross-attending to audio."""

from mint.bridge.config import BridgeConfig, BridgeInputError
from mint.bridge.heads import BridgeLMHead
from mint.bridge.init import InitReport, build_bridge, initialise_from_bert, read_bert_config
from mint.bridge.masks import AttentionMode, build_attention_mask
from mint.bridge.model import BridgeNet, BridgeOutput
from mint.bridge.tokenizer import (
    DECODER_START_TOKEN,
    decoder_start_token_id,
    load_bridge_tokenizer,
    minilm_path,
)

__all__ = [
    "DECODER_START_TOKEN",
    "AttentionMode",
    "BridgeConfig",
    "BridgeInputError",
    "BridgeLMHead",
    "BridgeNet",
    "BridgeOutput",
    "InitReport",
    "build_attention_mask",
    "build_bridge",
    "decoder_start_token_id",
    "initialise_from_bert",
    "load_bridge_tokenizer",
    "minilm_path",
    "read_bert_config",
]
