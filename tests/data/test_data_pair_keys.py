"""The content keys stage-1 items carry (spec section 9), end to end: dataset -> batch -> matches ->
hard negatives. A same-label pair, another caption of the clip or the same generated scene must never be
drawn as a negative, however similar the model finds it."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import soundfile as sf
import torch

from mint.audio.frontend import AudioFrontend, FrontendConfig
from mint.data.manifest import ManifestRecord, TimedEvent, read_manifest, write_manifest
from mint.data.pairs import CaptionPairDataset, collate_pairs, pair_keys
from mint.data.sources import ManifestSource, SyntheticSource
from mint.data.synth.corpus import SynthSpec, synth_example
from mint.errors import ConfigError, DataError
from mint.objectives import NegativeSampling, caption_key, content_matches, sample_hard_negatives

TEMPLATES = ["the sound of a {label}", "{label} can be heard", "a recording of {label}"]
# Draw the most similar allowed candidate: a blocked same-content candidate would be picked first.
HARDEST = NegativeSampling(temperature=1e-3, uniform_share=0.0)


def _record(tmp_path, clip_id: str, **fields) -> ManifestRecord:
    path = tmp_path / f"{clip_id}.wav"
    sf.write(str(path), np.zeros(1600, dtype=np.float32), 16000)
    return ManifestRecord(id=clip_id, audio=str(path), **fields)


def _batch(records, templates=None, epoch: int = 0) -> dict:
    frontend = AudioFrontend(FrontendConfig(sample_rate=16000, max_seconds=0.1))
    dataset = CaptionPairDataset(ManifestSource(records), frontend, seed=epoch, caption_templates=templates)
    return collate_pairs([dataset[(epoch, index)] for index in range(len(records))])


def _negatives_over_draws(batch: dict, draws: int) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """Every (row, negative) pair drawn over `draws` draws in which every candidate looks like the row's
    positive to the model (equal similarities, cold temperature: any allowed candidate is drawn)."""
    keys = pair_keys(batch)
    matches = content_matches(keys, keys, rank=0)
    rows = len(keys)
    similar = torch.ones(rows, rows)
    texts, clips = set(), set()
    generator = torch.Generator().manual_seed(0)
    for _ in range(draws):
        drawn = sample_hard_negatives(similar, similar, matches, generator, HARDEST)
        texts |= {(i, int(j)) for i, j in enumerate(drawn.text_index) if drawn.text_valid[i]}
        clips |= {(i, int(j)) for i, j in enumerate(drawn.audio_index) if drawn.audio_valid[i]}
    return texts, clips


def test_a_same_label_pair_is_never_drawn_as_a_negative(tmp_path):
    labels = ["Dog bark", "Rain", "Dog bark", "Rain", "Dog bark", "Siren"]
    records = [_record(tmp_path, f"clip-{i}", labels=[label]) for i, label in enumerate(labels)]
    for epoch in range(5):  # each epoch draws other templates for the rows
        texts, clips = _negatives_over_draws(_batch(records, TEMPLATES, epoch), draws=60)
        for negatives in (texts, clips):
            assert all(labels[i] != labels[j] for i, j in negatives), sorted(negatives)
            # Every other-label candidate does get drawn: the rule blocks matches and nothing else.
            assert negatives == {(i, j) for i in range(6) for j in range(6) if labels[i] != labels[j]}


def test_another_caption_of_the_clip_is_never_a_negative_for_it(tmp_path):
    # Clip 1's caption "a dog" is also one of clip 0's captions: it describes clip 0 too. Clip 0's row
    # caption "a dog barking loudly" is not one of clip 1's, so clip 1 may be its negative.
    records = [
        _record(tmp_path, "c0", captions=["a dog barking loudly", "a dog"]),
        _record(tmp_path, "c1", captions=["a dog"]),
        _record(tmp_path, "c2", captions=["rain on a roof"]),
    ]
    batch = _batch(records)
    assert batch["captions"][0] in ("a dog barking loudly", "a dog")
    batch["captions"][0] = "a dog barking loudly"
    batch["caption_keys"][0] = caption_key("a dog barking loudly")
    texts, clips = _negatives_over_draws(batch, draws=60)
    assert texts == {(0, 2), (1, 0), (1, 2), (2, 0), (2, 1)}  # clip 0 never gets caption "a dog"
    assert clips == {(0, 1), (0, 2), (1, 2), (2, 0), (2, 1)}  # caption "a dog" never gets clip 0


def test_the_same_generated_scene_is_never_a_negative(tmp_path):
    description = "a loud bell followed by a soft siren over pink noise"
    records = [
        _record(tmp_path, "s0", captions=["a bell then a siren"], event_description=description),
        _record(
            tmp_path,
            "s1",
            captions=["two sounds: a loud bell, then a soft siren"],
            event_description=description,
        ),
        _record(tmp_path, "s2", captions=["a knock"], event_description="a soft knock over white noise"),
    ]
    texts, clips = _negatives_over_draws(_batch(records), draws=60)
    expected = {(0, 2), (1, 2), (2, 0), (2, 1)}
    assert texts == expected and clips == expected


def test_labels_do_not_group_clips_that_have_their_own_captions(tmp_path):
    # A captioned clip's captions say more than its labels (kinds in order, attributes): two clips with
    # the same labels but different captions remain each other's negatives.
    records = [
        _record(tmp_path, "a", captions=["a loud siren"], labels=["siren"]),
        _record(tmp_path, "b", captions=["a soft siren"], labels=["siren"]),
    ]
    texts, clips = _negatives_over_draws(_batch(records), draws=20)
    assert texts == clips == {(0, 1), (1, 0)}


def test_event_descriptions_travel_through_manifests_and_sources(tmp_path):
    spec = SynthSpec(num_clips=3, seed=4, clip_seconds=3.0, max_events=2)
    source = SyntheticSource(spec)
    example = synth_example(spec, 1)
    assert source.clip(1).event_description == example.event_description
    # The description names every event with its attributes and the background: each caption's content.
    for event in example.scene.events:
        assert event.event.kind in example.event_description  # "knock" in "three soft knocks" too
    assert example.event_description.endswith(f"over {example.scene.background} noise")
    record = _record(tmp_path, "x", captions=["c"], event_description=example.event_description)
    write_manifest([record], tmp_path / "m.jsonl")
    (loaded,) = read_manifest(tmp_path / "m.jsonl")
    assert loaded.event_description == example.event_description
    assert ManifestSource([loaded]).clip(0).event_description == example.event_description


def test_a_bad_event_description_is_named(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"id": "x", "audio": "x.wav", "event_description": 3}\n')
    with pytest.raises(DataError, match="event_description"):
        read_manifest(tmp_path / "m.jsonl")


def test_event_captions_join_a_clips_captions_and_are_never_negatives_for_a_clip_holding_the_event(tmp_path):
    def events(*pairs):
        return [TimedEvent(label, 0.0, 0.05, caption) for label, caption in pairs]

    records = [
        _record(
            tmp_path,
            "c0",
            captions=["a dog barks, then a siren wails"],
            events=events(("dog bark", "a loud dog bark"), ("siren", "a long siren")),
        ),
        _record(tmp_path, "c1", captions=["a siren alone"], events=events(("siren", "a long siren"))),
        _record(tmp_path, "c2", captions=["rain on a roof"], events=events(("rain", "soft rain"))),
    ]
    frontend = AudioFrontend(FrontendConfig(sample_rate=16000, max_seconds=0.1))
    plain = CaptionPairDataset(ManifestSource(records), frontend, seed=0)
    with_events = CaptionPairDataset(ManifestSource(records), frontend, seed=0, event_share=0.5)
    drawn = Counter(with_events[(epoch, 0)]["caption"] for epoch in range(400))
    assert set(drawn) == {"a dog barks, then a siren wails", "a loud dog bark", "a long siren"}
    # Half the draws (binomial, 400 draws: a standard deviation of 10) take an event's caption.
    assert abs(drawn["a dog barks, then a siren wails"] - 200) < 50
    assert {plain[(epoch, 0)]["caption"] for epoch in range(40)} == {"a dog barks, then a siren wails"}
    with pytest.raises(ConfigError, match="event_share"):
        CaptionPairDataset(ManifestSource(records), frontend, seed=0, event_share=1.5)

    # Rows: clip 0 described by its siren alone, clip 1 by its own caption, clip 2 by its event.
    items = [with_events[(0, index)] for index in range(3)]
    for item, caption in zip(items, ["a long siren", "a siren alone", "soft rain"], strict=True):
        item["caption"], item["caption_key"] = caption, caption_key(caption)
    texts, clips = _negatives_over_draws(collate_pairs(items), draws=60)
    # "a long siren" describes clip 1 as well (one of its event captions): it is never clip 1's negative
    # caption, nor clip 1 its negative clip; "a siren alone" is not one of clip 0's captions, so it may be.
    assert texts == {(0, 1), (0, 2), (1, 2), (2, 0), (2, 1)}
    assert clips == {(0, 2), (1, 0), (1, 2), (2, 0), (2, 1)}


def test_clips_from_a_manifest_or_the_generator_carry_their_events_captions(tmp_path):
    spec = SynthSpec(num_clips=3, clip_seconds=3.0, max_events=3, seed=5)
    for index in range(3):
        example = synth_example(spec, index)
        phrases = [event.caption for event in example.events]
        assert phrases and all(phrases)
        assert SyntheticSource(spec).clip(index).event_captions == list(dict.fromkeys(phrases))
        record = _record(tmp_path, f"r{index}", captions=["x"], events=example.events)
        assert ManifestSource([record]).clip(0).event_captions == list(dict.fromkeys(phrases))


def _clip_of(window: dict) -> int:
    """The clip a window's audio came from: clip i is written as the constant (i + 1) / 10."""
    return round(float(window["waveform"].mean()) * 10) - 1


def test_a_sequence_item_reads_its_clips_as_windows_and_any_of_their_captions_describes_it(tmp_path):
    captions = [["a dog barks"], ["rain on a roof", "rain falls"], ["a siren wails"], ["a bell rings"]]
    records = []
    for index, texts in enumerate(captions):
        path = tmp_path / f"c{index}.wav"
        sf.write(str(path), np.full(1600, (index + 1) / 10, dtype=np.float32), 16000)
        records.append(ManifestRecord(id=f"c{index}", audio=str(path), captions=texts))
    frontend = AudioFrontend(FrontendConfig(sample_rate=16000, max_seconds=0.1))
    source = ManifestSource(records)
    sequences = CaptionPairDataset(source, frontend, seed=0, sequence_share=1.0, sequence_windows=3)
    plain = CaptionPairDataset(source, frontend, seed=0)
    for index in range(4):
        item = sequences[(0, index)]
        parts = [_clip_of(window) for window in item["windows"]]
        assert 2 <= len(parts) <= 3 and len(set(parts)) == len(parts) and index in parts
        described = [text for part in parts for text in captions[part]]
        assert item["caption"] in described
        assert item["clip_caption_keys"] == [caption_key(text) for text in described]
    # A recording beside the four clips alone, in one batch.
    items = [sequences[(0, 0)], *(plain[(0, index)] for index in range(4))]
    batch = collate_pairs(items)
    assert batch["windows"] == [len(items[0]["windows"]), 1, 1, 1, 1]
    assert batch["waveforms"].shape[0] == sum(batch["windows"])
    assert "windows" not in collate_pairs(items[1:])
    parts = [_clip_of(window) for window in items[0]["windows"]]
    texts, clips = _negatives_over_draws(batch, draws=80)
    # A clip the recording holds is never its negative, either way; the others are drawn.
    for part in range(4):
        pair_drawn = (0, part + 1) in texts or (part + 1, 0) in clips
        assert pair_drawn == (part not in parts), (part, parts)
