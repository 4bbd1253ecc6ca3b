"""MintModel: frozen audio encoder + trainable LayerNorm + Bridge-Net + stage-1 heads."""

from mint.modeling.config import MintConfig
from mint.modeling.mint import MintModel

__all__ = ["MintConfig", "MintModel"]
