"""Stage-1 objectives: audio-text contrastive (ATC), matching (ATM) and grounded generation (ATG), the
content keys that say which pairs match, and `Stage1Objective`, which combines them for a batch.

The loss pieces are pure tensor functions and small modules; `Stage1Objective` calls a model for its
features and logits and never runs the Bridge-Net itself.
"""

from mint.objectives._checks import ObjectiveInputError
from mint.objectives.contrastive import (
    ContrastiveLoss,
    ContrastiveOutput,
    LearnableTemperature,
    audio_text_similarity,
)
from mint.objectives.generation import (
    IGNORE_INDEX,
    generation_loss,
    next_token_targets,
    prepare_generation_inputs,
    target_loss,
)
from mint.objectives.keys import (
    PAD,
    ContentKeys,
    ContentMatches,
    caption_key,
    caption_keys,
    content_key,
    content_matches,
    normalise_caption,
)
from mint.objectives.matching import (
    HardNegatives,
    NegativeSampling,
    match_log_odds,
    match_logits_from_queries,
    matching_loss,
    negative_probabilities,
    rerank_score,
    sample_hard_negatives,
)
from mint.objectives.stage1 import ObjectiveWeights, Stage1Losses, Stage1Model, Stage1Objective

__all__ = [
    "IGNORE_INDEX",
    "PAD",
    "ContentKeys",
    "ContentMatches",
    "ContrastiveLoss",
    "ContrastiveOutput",
    "HardNegatives",
    "LearnableTemperature",
    "NegativeSampling",
    "ObjectiveInputError",
    "ObjectiveWeights",
    "Stage1Losses",
    "Stage1Model",
    "Stage1Objective",
    "audio_text_similarity",
    "caption_key",
    "caption_keys",
    "content_key",
    "content_matches",
    "generation_loss",
    "match_log_odds",
    "match_logits_from_queries",
    "matching_loss",
    "negative_probabilities",
    "next_token_targets",
    "normalise_caption",
    "prepare_generation_inputs",
    "rerank_score",
    "sample_hard_negatives",
    "target_loss",
]
