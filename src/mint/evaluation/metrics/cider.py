"""CIDEr-D (Vedantam et al., 2015), the variant pycocoevalcap reports as "CIDEr".

For each n-gram order n = 1..4, a caption is a vector of tf-idf weights: term frequency times
log(N / df), with N the number of evaluated items and df the number of items whose references
contain the n-gram (df < 1 is taken as 1). Against each reference, the candidate's weights are
clipped by the reference's ("D": no reward for repeating an n-gram), giving
    sim_n = sum_g min(c_g, r_g) r_g / (|c| |r|),
multiplied by the Gaussian length penalty exp(-(len_c - len_r)^2 / (2 sigma^2)), sigma = 6.
The item score is 10 x the mean over orders and references; the corpus score is the mean over items.

Everything after tokenising is done on flat integer arrays (one entry per caption and distinct
n-gram), so the whole evaluated set is scored in a handful of numpy sorts and bincounts.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from mint.evaluation.metrics.text import check_caption_inputs

MAX_ORDER = 4


def _ngram_ids(sentences: list[list[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct n-grams of every sentence: (sentence index, n-gram id, count) per entry, plus the
    order (0-based) of each n-gram id. Entries are sorted by sentence, then by n-gram id."""
    all_tokens = list(itertools.chain.from_iterable(sentences))
    vocabulary = {token: index for index, token in enumerate(dict.fromkeys(all_tokens))}
    token_ids = np.fromiter(map(vocabulary.__getitem__, all_tokens), dtype=np.int64, count=len(all_tokens))
    lengths = np.array([len(tokens) for tokens in sentences], dtype=np.int64)
    sentence_of_token = np.repeat(np.arange(len(sentences), dtype=np.int64), lengths)
    sentence_end = np.cumsum(lengths)[sentence_of_token]
    positions = np.arange(len(token_ids), dtype=np.int64)

    # An n-gram starting at p is the (n-1)-gram at p extended by token p+n-1; numbering the distinct
    # (n-1)-gram id and token pairs gives the n-gram ids of that order.
    gram_ids = token_ids
    gram_count = len(vocabulary)
    starts = positions
    per_order: list[tuple[np.ndarray, np.ndarray]] = [(starts, gram_ids)]
    orders = [np.zeros(gram_count, dtype=np.int64)]
    offset = gram_count
    for order in range(1, MAX_ORDER):
        keep = starts + order < sentence_end[starts]
        starts = starts[keep]
        pairs = gram_ids[keep] * len(vocabulary) + token_ids[starts + order]
        distinct, local_ids = np.unique(pairs, return_inverse=True)
        gram_ids = local_ids.reshape(-1)
        per_order.append((starts, gram_ids + offset))
        orders.append(np.full(len(distinct), order, dtype=np.int64))
        offset += len(distinct)

    all_starts = np.concatenate([starts_n for starts_n, _ in per_order])
    all_ids = np.concatenate([ids for _, ids in per_order])
    stride = max(offset, 1)
    keys, counts = np.unique(sentence_of_token[all_starts] * stride + all_ids, return_counts=True)
    return keys // stride, keys % stride, counts.astype(np.float64), np.concatenate(orders)


def cider_d(
    candidates: Sequence[str], references: Sequence[Sequence[str]], sigma: float = 6.0
) -> tuple[float, np.ndarray]:
    """Mean CIDEr-D over items and the per-item scores, for tokenised captions."""
    check_caption_inputs("CIDEr-D", candidates, references)
    items = len(candidates)
    sentences = [candidate.split() for candidate in candidates]
    owner_list: list[int] = []
    for item, refs in enumerate(references):
        sentences.extend(ref.split() for ref in refs)
        owner_list.extend([item] * len(refs))
    owner = np.array(owner_list, dtype=np.int64)
    lengths = np.array([len(tokens) for tokens in sentences], dtype=np.float64)
    sentence, gram, count, order_of_gram = _ngram_ids(sentences)
    grams = len(order_of_gram)

    is_reference = sentence >= items
    ref_index = sentence[is_reference] - items
    ref_gram = gram[is_reference]
    item_gram_pairs = np.sort(owner[ref_index] * grams + ref_gram)
    first_of_pair = np.diff(item_gram_pairs, prepend=-1) != 0
    document_frequency = np.bincount(item_gram_pairs[first_of_pair] % grams, minlength=grams)
    idf = np.log(float(items)) - np.log(np.maximum(document_frequency, 1).astype(np.float64))

    weight = count * idf[gram]
    order = order_of_gram[gram]
    norms = np.sqrt(
        np.bincount(sentence * MAX_ORDER + order, weights=weight**2, minlength=len(sentences) * MAX_ORDER)
    ).reshape(len(sentences), MAX_ORDER)

    # Candidate entries come first and are sorted by (item, gram), so each reference entry finds
    # the candidate's weight for the same n-gram by binary search.
    candidate_keys = sentence[~is_reference] * grams + gram[~is_reference]
    candidate_weight = weight[~is_reference]
    wanted = owner[ref_index] * grams + ref_gram
    hypothesis_weight = np.zeros(len(wanted))
    if len(candidate_keys):
        found_at = np.minimum(np.searchsorted(candidate_keys, wanted), len(candidate_keys) - 1)
        hit = candidate_keys[found_at] == wanted
        hypothesis_weight[hit] = candidate_weight[found_at[hit]]
    ref_weight = weight[is_reference]
    clipped = np.minimum(hypothesis_weight, ref_weight) * ref_weight
    dots = np.bincount(
        ref_index * MAX_ORDER + order[is_reference], weights=clipped, minlength=len(owner) * MAX_ORDER
    ).reshape(len(owner), MAX_ORDER)

    denominator = norms[owner] * norms[items:]
    similarity = np.where(denominator > 0, dots / np.where(denominator > 0, denominator, 1.0), 0.0)
    # The reference measures length in bigrams (tokens - 1); the difference is the same whenever
    # both captions have a token, and when one is empty its similarity is 0 whatever the penalty.
    delta = lengths[owner] - lengths[items:]
    per_reference = similarity.mean(axis=1) * np.exp(-(delta**2) / (2 * sigma**2))
    references_per_item = np.bincount(owner, minlength=items)
    scores = 10.0 * np.bincount(owner, weights=per_reference, minlength=items) / references_per_item
    return float(scores.mean()), scores
