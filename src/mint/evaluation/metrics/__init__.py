"""Metrics for captioning, retrieval and classification, computed as the field reports them.

Caption metrics equal pycocoevalcap's on the same inputs (PTB tokenisation and METEOR run the
jars it ships, so they need Java); retrieval and classification metrics are plain numpy.
"""

from mint.evaluation.metrics.bleu import bleu
from mint.evaluation.metrics.caption import (
    CAPTION_METRICS,
    caption_metrics_from_jsonl,
    compute_caption_metrics,
)
from mint.evaluation.metrics.cider import cider_d
from mint.evaluation.metrics.classification import (
    average_precision,
    classification_metrics,
    confusion_matrix,
    mean_average_precision,
)
from mint.evaluation.metrics.meteor import meteor
from mint.evaluation.metrics.retrieval import retrieval_metrics
from mint.evaluation.metrics.rouge import rouge_l
from mint.evaluation.metrics.spice import SPICE_UNAVAILABLE, spice
from mint.evaluation.metrics.tokenize import ptb_tokenize

__all__ = [
    "CAPTION_METRICS",
    "SPICE_UNAVAILABLE",
    "average_precision",
    "bleu",
    "caption_metrics_from_jsonl",
    "cider_d",
    "classification_metrics",
    "compute_caption_metrics",
    "confusion_matrix",
    "mean_average_precision",
    "meteor",
    "ptb_tokenize",
    "retrieval_metrics",
    "rouge_l",
    "spice",
]
