"""Stage-1 objectives: audio-text contrastive (ATC), matching (ATM) and grounded generation (ATG).

Pure tensor functions and small modules called by the model; none of them runs the Bridge-Net.
"""

from mint.objectives._checks import ObjectiveInputError
from mint.objectives.contrastive import (
    ContrastiveLoss,
    ContrastiveOutput,
    LearnableTemperature,
    audio_text_similarity,
)
from mint.objectives.generation import IGNORE_INDEX, generation_loss, prepare_generation_inputs
from mint.objectives.matching import (
    HardNegatives,
    caption_key,
    caption_keys,
    match_logits_from_queries,
    matching_loss,
    normalise_caption,
    sample_hard_negatives,
)

__all__ = [
    "IGNORE_INDEX",
    "ContrastiveLoss",
    "ContrastiveOutput",
    "HardNegatives",
    "LearnableTemperature",
    "ObjectiveInputError",
    "audio_text_similarity",
    "caption_key",
    "caption_keys",
    "generation_loss",
    "match_logits_from_queries",
    "matching_loss",
    "normalise_caption",
    "prepare_generation_inputs",
    "sample_hard_negatives",
]
