"""Stage 1 through MintModel and Stage1Objective: the query cache, the losses against independent
recomputations, and an ATM head that learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mint.bridge import AttentionMode
from mint.config import load_config
from mint.errors import ConfigError
from mint.modeling import MintConfig, MintModel
from mint.modeling.outputs import AudioFeatures, BatchInputError, InstructBatch, Stage1Batch
from mint.objectives import (
    ContentKeys,
    ContentMatches,
    NegativeSampling,
    ObjectiveWeights,
    Stage1Objective,
    caption_key,
    content_key,
    generation_loss,
    match_log_odds,
    prepare_generation_inputs,
    sample_hard_negatives,
)
from mint.objectives._checks import ObjectiveInputError
from mint.objectives.stage1 import window_slots
from mint_testing import jitter_trainable_, tiny_model_overrides

pytestmark = pytest.mark.usefixtures("single_thread")

CAPTIONS = [
    "a dog barks",
    "rain falls on a tin roof",
    "a siren wails",
    "a bell rings twice",
    "an engine hums",
]


def _model(seed: int = 0, extra: list[str] = ()) -> MintModel:
    torch.manual_seed(seed)
    overrides = [item.removeprefix("model.") for item in tiny_model_overrides()]
    return MintModel.from_config(load_config(MintConfig, None, [*overrides, *extra]))


def _features(model: MintModel, clips: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stand-in encoder features of `clips` clips of different lengths."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(clips, 12, model.encoder.hidden_size, generator=generator)
    mask = torch.ones(clips, 12, dtype=torch.bool)
    for row in range(clips):
        mask[row, 12 - 2 * (row % 3) :] = False
    return features, mask


def _keys(captions: list[str]) -> ContentKeys:
    return ContentKeys.from_rows(
        [caption_key(text) for text in captions],
        [[caption_key(text)] for text in captions],
        [[content_key("clip", str(row))] for row in range(len(captions))],
    )


def _full_pass_generation_logits(model: MintModel, audio: AudioFeatures, ids, mask) -> torch.Tensor:
    """The reference ATG pass: queries and text together through every layer, causal mask."""
    out = model.bridge(
        audio_features=audio.features,
        audio_mask=audio.mask,
        input_ids=ids,
        attention_mask=mask,
        mode=AttentionMode.CAUSAL,
    )
    return model.bridge.lm_logits(out.text_output)


def _atm_reference(model: MintModel, audio: AudioFeatures, ids, mask, drawn, audio_row) -> torch.Tensor:
    """ATM's loss recomputed one pair at a time: each item with its caption (a match), with its drawn
    negative caption, and its caption with its drawn negative item; `audio_row(item, caption)` is the audio
    row the pair reads."""
    terms = []
    for item in range(len(drawn.text_index)):
        pairs = [
            (item, item, 1),
            (item, int(drawn.text_index[item]), 0),
            (int(drawn.audio_index[item]), item, 0),
        ]
        for owner, caption, label in pairs:
            row = audio_row(owner, caption)
            one_audio = AudioFeatures(audio.features[row : row + 1], audio.mask[row : row + 1])
            logits = model.match_logits(one_audio, ids[caption : caption + 1], mask[caption : caption + 1])
            terms.append(-torch.log_softmax(logits.double(), dim=1)[0, label])
    return torch.stack(terms).mean()


def test_query_pass_equals_the_bridge_forward_of_the_queries_alone() -> None:
    model = jitter_trainable_(_model(), 0.05).eval()
    audio = model.normalise_audio(*_features(model, 4, seed=1))
    with torch.no_grad():
        reference = model.bridge(audio_features=audio.features, audio_mask=audio.mask).query_output
        queries = model.query_pass(audio)
    torch.testing.assert_close(queries.output, reference, rtol=1e-5, atol=1e-6)
    assert len(queries.states) == model.bridge.config.num_layers
    torch.testing.assert_close(
        queries.states[0], model.bridge.embeddings(model.bridge.queries.expand(4, -1, -1), None)
    )


@pytest.mark.parametrize("checkpointing", [False, True])
def test_atg_through_the_query_cache_equals_the_full_pass(checkpointing: bool) -> None:
    """Same loss and same gradient of every weight as running the queries and the caption together."""
    model = jitter_trainable_(_model(), 0.05).train()
    model.bridge.gradient_checkpointing = checkpointing
    audio = model.normalise_audio(*_features(model, 5, seed=2))
    ids, mask = model.tokenize(CAPTIONS)
    dec_ids, labels = prepare_generation_inputs(ids, mask, model.decoder_start_token_id, model.pad_token_id)
    losses, grads = {}, {}
    for name in ("full", "cache"):
        model.zero_grad(set_to_none=True)
        audio = model.normalise_audio(*_features(model, 5, seed=2))
        if name == "full":
            logits = _full_pass_generation_logits(model, audio, dec_ids, mask)
        else:
            logits = model.generation_logits(model.query_pass(audio), dec_ids, mask)
        losses[name] = generation_loss(logits, labels)
        losses[name].backward()
        # A weight the loss does not reach has no gradient in one pass and a zero one in the other (the
        # last layer's query path, whose outputs no text position reads): both count as zero.
        grads[name] = {
            n: torch.zeros_like(p) if p.grad is None else p.grad.clone()
            for n, p in model.named_parameters()
            if p.requires_grad
        }
    torch.testing.assert_close(losses["cache"], losses["full"], rtol=1e-6, atol=1e-6)
    scale = max(float(g.abs().max()) for g in grads["full"].values())
    assert sum(bool(g.abs().max() > 1e-3 * scale) for g in grads["full"].values()) > 20
    for name, grad in grads["full"].items():
        torch.testing.assert_close(grads["cache"][name], grad, rtol=1e-4, atol=1e-6 * scale, msg=name)


def test_stage1_losses_equal_an_independent_recomputation() -> None:
    model = jitter_trainable_(_model(), 0.05).eval()
    features, feature_mask = _features(model, 5, seed=3)
    # Rows 0 and 3 are the same scene (one group): positives of each other for ATC, never ATM negatives.
    keys = ContentKeys.from_rows(
        [caption_key(text) for text in CAPTIONS],
        [[caption_key(text)] for text in CAPTIONS],
        [
            [content_key("clip", "0"), 7],
            [content_key("clip", "1")],
            [content_key("clip", "2")],
            [content_key("clip", "3"), 7],
            [content_key("clip", "4")],
        ],
    )
    ids, mask = model.tokenize(CAPTIONS)
    weights = ObjectiveWeights(atc=0.5, atm=2.0, atg=0.25)
    sampling = NegativeSampling(temperature=0.3, uniform_share=0.2)
    batch = Stage1Batch(
        input_ids=ids,
        attention_mask=mask,
        keys=keys,
        generator=torch.Generator().manual_seed(5),
        features=features,
        feature_mask=feature_mask,
    )
    with torch.no_grad():
        out = model(batch, objective=Stage1Objective(weights, sampling))

        audio = model.normalise_audio(features, feature_mask)
        audio_embeds = model.audio_embeddings(audio).double()
        text_embeds = model.text_embeddings(ids, mask).double()
        similarity = torch.einsum("aqe,te->atq", audio_embeds, text_embeds).amax(dim=2)
        temperature = float(model.temperature())
        positives = torch.eye(5, dtype=torch.bool)
        positives[0, 3] = positives[3, 0] = True
        atc = 0.0
        for matrix in (similarity, similarity.T):
            log_probs = torch.log_softmax(matrix / temperature, dim=1)
            for row in range(5):
                atc -= log_probs[row, positives[row]].mean() / 5 / 2
        # The negatives the objective drew: same generator seed, same similarities, same blocked pairs.
        drawn = sample_hard_negatives(
            similarity.float(),
            similarity.T.float(),
            ContentMatches(positives, positives.clone()),
            torch.Generator().manual_seed(5),
            sampling,
        )
        assert not any(positives[row, int(drawn.text_index[row])] for row in range(5))
        atm = _atm_reference(model, audio, ids, mask, drawn, lambda clip, caption: clip)
        dec_ids, labels = prepare_generation_inputs(
            ids, mask, model.decoder_start_token_id, model.pad_token_id
        )
        atg = generation_loss(_full_pass_generation_logits(model, audio, dec_ids, mask), labels)

    assert out.loss_atc.item() == pytest.approx(float(atc), rel=1e-5)
    assert out.loss_atm.item() == pytest.approx(float(atm), rel=1e-5)
    assert out.loss_atg.item() == pytest.approx(float(atg), rel=1e-5)
    expected_total = 0.5 * float(atc) + 2.0 * float(atm) + 0.25 * float(atg)
    assert out.loss.item() == pytest.approx(expected_total, rel=1e-5)


def test_stage1_losses_over_windows_equal_an_independent_recomputation() -> None:
    """Items read as several windows (a recording longer than one clip): an item's ATC similarity is its
    best window's, and ATM and ATG read, for each caption, the item's window most similar to that caption."""
    # Weights far enough from their initial values that ATG's loss depends on which window it reads.
    model = jitter_trainable_(_model(), 0.5).eval()
    windows = [2, 1, 3, 1, 2]
    features, feature_mask = _features(model, sum(windows), seed=4)
    ids, mask = model.tokenize(CAPTIONS)
    sampling = NegativeSampling(temperature=0.3, uniform_share=0.2)
    batch = Stage1Batch(
        input_ids=ids,
        attention_mask=mask,
        keys=_keys(CAPTIONS),
        generator=torch.Generator().manual_seed(6),
        features=features,
        feature_mask=feature_mask,
        windows=windows,
    )
    with torch.no_grad():
        out = model(batch, objective=Stage1Objective(ObjectiveWeights(), sampling))

        audio = model.normalise_audio(features, feature_mask)
        row_embeds = model.audio_embeddings(audio).double()
        text_embeds = model.text_embeddings(ids, mask).double()
        per_row = torch.einsum("rqe,te->rtq", row_embeds, text_embeds).amax(dim=2)  # [audio rows, captions]
        starts = np.cumsum([0, *windows[:-1]])
        item_rows = [list(range(start, start + count)) for start, count in zip(starts, windows, strict=True)]
        similarity = torch.stack([per_row[rows].amax(dim=0) for rows in item_rows])
        # best[i][t]: the audio row of item i most similar to caption t.
        best = [[rows[int(per_row[rows, t].argmax())] for t in range(5)] for rows in item_rows]
        for rows in item_rows:
            if len(rows) > 1:  # no near tie the objective's float32 could break the other way
                top = per_row[rows].sort(dim=0, descending=True).values
                assert (top[0] - top[1]).min() > 1e-4
        assert any(best[i][i] != item_rows[i][0] for i in range(5))  # some best window is not the first

        temperature = float(model.temperature())
        atc = 0.0
        for matrix in (similarity, similarity.T):
            atc -= torch.log_softmax(matrix / temperature, dim=1).diagonal().mean() / 2
        eye = torch.eye(5, dtype=torch.bool)
        drawn = sample_hard_negatives(
            similarity.float(),
            similarity.T.float(),
            ContentMatches(eye, eye.clone()),
            torch.Generator().manual_seed(6),
            sampling,
        )
        atm = _atm_reference(model, audio, ids, mask, drawn, lambda item, caption: best[item][caption])
        own = [best[item][item] for item in range(5)]
        own_audio = AudioFeatures(audio.features[own], audio.mask[own])
        dec_ids, labels = prepare_generation_inputs(
            ids, mask, model.decoder_start_token_id, model.pad_token_id
        )
        atg = generation_loss(_full_pass_generation_logits(model, own_audio, dec_ids, mask), labels)
        first = [rows[0] for rows in item_rows]
        first_audio = AudioFeatures(audio.features[first], audio.mask[first])
        atg_first = generation_loss(_full_pass_generation_logits(model, first_audio, dec_ids, mask), labels)
        # The windows told apart well beyond the comparison's tolerance (rel 1e-5) below.
        assert abs(float(atg - atg_first)) > 1e-4 * float(atg)

    assert out.loss_atc.item() == pytest.approx(float(atc), rel=1e-5)
    assert out.loss_atm.item() == pytest.approx(float(atm), rel=1e-5)
    assert out.loss_atg.item() == pytest.approx(float(atg), rel=1e-5)


def test_window_slots_repeat_an_items_last_window() -> None:
    """Hand-worked: items of 2, 1 and 3 windows over 6 audio rows."""
    slots = window_slots([2, 1, 3], 6, torch.device("cpu"))
    assert slots.tolist() == [[0, 1, 1], [2, 2, 2], [3, 4, 5]]
    assert window_slots(None, 3, torch.device("cpu")).tolist() == [[0], [1], [2]]
    for bad in ([2, 1, 2], [3, 0, 3]):
        with pytest.raises(ObjectiveInputError, match="windows"):
            window_slots(bad, 6, torch.device("cpu"))


def test_atm_learns_to_separate_matches_from_non_matches() -> None:
    """A tiny model trained on a few pairs with the whole stage-1 objective: the ATM log-odds of every
    clip with its own caption rank above those of every clip with another caption (ROC AUC)."""
    model = _model(seed=0).train()
    features, feature_mask = _features(model, 5, seed=4)
    ids, mask = model.tokenize(CAPTIONS)
    keys = _keys(CAPTIONS)
    objective = Stage1Objective(ObjectiveWeights(), NegativeSampling(temperature=0.1, uniform_share=0.5))
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=3e-3, weight_decay=0.0
    )
    for step in range(350):
        batch = Stage1Batch(
            input_ids=ids,
            attention_mask=mask,
            keys=keys,
            generator=torch.Generator().manual_seed(step),
            features=features,
            feature_mask=feature_mask,
        )
        loss = model(batch, objective=objective).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        audio = model.normalise_audio(features, feature_mask)
        scores = np.stack(
            [
                match_log_odds(
                    model.match_logits(audio, ids[j : j + 1].expand(5, -1), mask[j : j + 1].expand(5, -1))
                ).numpy()
                for j in range(5)
            ],
            axis=1,
        )
    matches, others = scores[np.eye(5, dtype=bool)], scores[~np.eye(5, dtype=bool)]
    # ROC AUC: the share of (match, non-match) score pairs in the right order.
    auc = float((matches[:, None] > others[None, :]).mean())
    assert auc >= 0.95, (auc, scores.round(2))


def test_forward_takes_one_batch_per_stage() -> None:
    model = _model()
    features, feature_mask = _features(model, 2, seed=5)
    ids, mask = model.tokenize(CAPTIONS[:2])
    batch = Stage1Batch(
        input_ids=ids,
        attention_mask=mask,
        keys=_keys(CAPTIONS[:2]),
        generator=torch.Generator(),
        features=features,
        feature_mask=feature_mask,
    )
    with pytest.raises(BatchInputError, match="objective"):
        model(batch)
    with pytest.raises(BatchInputError, match="beside a batch"):
        model(batch, objective=Stage1Objective(), instructions=["x", "y"])
    out = model(batch, objective=Stage1Objective())
    assert torch.isfinite(out.loss) and out.loss.requires_grad
    silent = Stage1Batch(
        input_ids=ids, attention_mask=mask, keys=_keys(CAPTIONS[:2]), generator=torch.Generator()
    )
    with pytest.raises(BatchInputError, match="neither waveforms"):
        model(silent, objective=Stage1Objective())
    # A stage-1 model has no LLM: a stage-2 batch is refused by the stage-2 path, naming the missing LLM.
    with pytest.raises(ConfigError, match=r"model\.llm"):
        model(
            InstructBatch(
                instructions=["a", "b"], responses=["c", "d"], features=features, feature_mask=feature_mask
            )
        )


def test_rerank_weight_is_the_calibrated_one_or_the_temperature() -> None:
    model = _model()
    assert model.rerank_weight == pytest.approx(model.config.temperature)
    calibrated = _model(extra=["rerank_weight=0.4"])
    assert calibrated.rerank_weight == 0.4
    with pytest.raises(ConfigError, match=r"model\.rerank_weight"):
        _model(extra=["rerank_weight=-1"])


def test_text_embeddings_are_unit_vectors() -> None:
    model = _model().eval()
    with torch.no_grad():
        embeddings = model.text_embeddings(*model.tokenize(CAPTIONS))
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(5))
    assert F.cosine_similarity(embeddings[0], embeddings[1], dim=0) < 1
