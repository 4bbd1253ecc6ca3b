import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mint.data.manifest import read_manifest
from mint.data.synth.corpus import (
    SynthSpec,
    clip_id,
    generate_corpus,
    single_event_spec,
    split_ranges,
    synth_example,
)
from mint.errors import ConfigError, DataError


def _same_example(a, b) -> bool:
    return (
        np.array_equal(a.audio, b.audio)
        and a.captions == b.captions
        and a.labels == b.labels
        and a.qa == b.qa
        and a.scene == b.scene
    )


def test_same_seed_and_index_give_the_same_clip_in_any_order():
    spec = SynthSpec(num_clips=10, seed=4, clip_seconds=3.0)
    forward = [synth_example(spec, index) for index in range(4)]
    backward = [synth_example(spec, index) for index in reversed(range(4))][::-1]
    for a, b in zip(forward, backward, strict=True):
        assert _same_example(a, b)
    assert not np.array_equal(forward[0].audio, forward[1].audio)
    assert forward[0].captions != forward[1].captions or forward[0].scene != forward[1].scene
    other_seed = synth_example(SynthSpec(num_clips=10, seed=5, clip_seconds=3.0), 0)
    assert not np.array_equal(forward[0].audio, other_seed.audio)


def test_example_audio_and_text_fields():
    spec = SynthSpec(num_clips=5, seed=1, sample_rate=22050, clip_seconds=3.5)
    example = synth_example(spec, 3)
    assert example.audio.dtype == np.float32
    assert example.audio.shape == (round(3.5 * 22050),)
    assert len(example.captions) >= 4
    assert example.labels == example.scene.kinds
    assert example.qa


def test_single_event_spec_gives_one_labelled_event_per_clip():
    spec = single_event_spec(num_clips=12, seed=2, event_kinds=["siren", "bell", "knock"])
    assert (spec.min_events, spec.max_events) == (1, 1)
    for index in range(12):
        example = synth_example(spec, index)
        assert len(example.scene.events) == 1
        assert example.labels[0] in {"siren", "bell", "knock"}


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"num_clips": 0}, "num_clips"),
        ({"num_clips": 4, "seed": -1}, "seed"),
        ({"num_clips": 4, "sample_rate": 8000}, "sample_rate"),
        ({"num_clips": 4, "event_kinds": ["siren", "harp"]}, "event_kinds"),
        ({"num_clips": 4, "event_kinds": ["siren", "siren", "bell"]}, "event_kinds"),
        ({"num_clips": 4, "event_kinds": ["siren", "bell"]}, "max_events"),
        ({"num_clips": 4, "min_events": 3, "max_events": 2}, "max_events"),
        ({"num_clips": 4, "clip_seconds": 2.0}, "clip_seconds"),
        ({"num_clips": 4, "snr_db_range": (30.0, 10.0)}, "snr_db_range"),
    ],
)
def test_bad_specs_are_rejected_naming_the_field(fields, key):
    with pytest.raises(ConfigError, match=key):
        SynthSpec(**fields)


def test_index_outside_the_corpus_is_rejected():
    spec = SynthSpec(num_clips=3)
    with pytest.raises(DataError, match="index"):
        synth_example(spec, 3)


def test_split_ranges_partition_the_indices():
    ranges = split_ranges(10, {"train": 0.8, "val": 0.1, "test": 0.1})
    assert [len(r) for r in ranges.values()] == [8, 1, 1]
    assert sorted(i for r in ranges.values() for i in r) == list(range(10))
    with pytest.raises(ConfigError, match="sum to 1"):
        split_ranges(10, {"train": 0.5, "test": 0.2})
    with pytest.raises(ConfigError, match="split name"):
        split_ranges(10, {"../train": 1.0})


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


def test_generate_corpus_writes_wavs_and_manifests_and_resumes(tmp_path):
    spec = SynthSpec(num_clips=10, seed=3, clip_seconds=3.0)
    out = generate_corpus(spec, tmp_path / "corpus", workers=2)

    records = {name: read_manifest(out / f"{name}.jsonl") for name in ("train", "val", "test")}
    assert [len(records[name]) for name in ("train", "val", "test")] == [8, 1, 1]
    all_records = [record for name in records for record in records[name]]
    assert sorted(record.id for record in all_records) == sorted(clip_id(spec, i) for i in range(10))
    for record in all_records:
        index = int(record.id.rsplit("-", 1)[1])
        expected = synth_example(spec, index)
        audio, sample_rate = sf.read(record.audio, dtype="float32")
        assert sf.info(record.audio).subtype == "PCM_16"
        assert sample_rate == 16000 and audio.shape == expected.audio.shape
        np.testing.assert_allclose(audio, expected.audio, atol=1.0 / 32768 + 1e-7)
        assert record.captions == expected.captions
        assert record.labels == expected.labels
        assert record.qa == expected.qa
        assert record.duration == 3.0
    assert not list(out.rglob("*.part"))

    before = _snapshot(out)
    generate_corpus(spec, out, workers=2)
    assert _snapshot(out) == before

    lost = out / "audio" / f"{clip_id(spec, 4)}.wav"
    lost.unlink()
    truncated = out / "audio" / f"{clip_id(spec, 7)}.wav"
    truncated.write_bytes(truncated.read_bytes()[:1000])
    generate_corpus(spec, out, workers=1)
    after = _snapshot(out)
    rewritten = {name for name in after if after[name] != before.get(name)}
    assert rewritten == {os.path.join("audio", lost.name), os.path.join("audio", truncated.name)}
    assert sf.info(str(truncated)).frames == 3 * 16000


def test_generate_corpus_refuses_a_folder_made_from_another_spec(tmp_path):
    generate_corpus(
        SynthSpec(num_clips=2, seed=0, clip_seconds=3.0), tmp_path, workers=1, splits={"test": 1.0}
    )
    with pytest.raises(DataError, match="different spec"):
        generate_corpus(
            SynthSpec(num_clips=2, seed=1, clip_seconds=3.0), tmp_path, workers=1, splits={"test": 1.0}
        )
