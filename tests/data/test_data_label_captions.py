"""Stage-1 captions made from labels through templates (`data.caption_templates`)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from mint.audio.frontend import AudioFrontend, FrontendConfig
from mint.config import load_config
from mint.data.manifest import ManifestRecord
from mint.data.pairs import CaptionPairDataset, check_templates, label_captions, label_text
from mint.data.sources import ManifestSource
from mint.errors import ConfigError, DataError
from mint.objectives.keys import caption_key
from mint.training.config import DataConfig, PretrainConfig

TEMPLATES = ["the sound of a {label}", "{label} can be heard", "a recording of {label}"]


def _record(tmp_path, clip_id: str, captions=(), labels=()) -> ManifestRecord:
    path = tmp_path / f"{clip_id}.wav"
    samples = np.random.default_rng(len(clip_id)).uniform(-0.3, 0.3, 8000).astype(np.float32)
    sf.write(str(path), samples, 16000)
    return ManifestRecord(id=clip_id, audio=str(path), captions=list(captions), labels=list(labels))


def _dataset(records, templates, train=True) -> CaptionPairDataset:
    frontend = AudioFrontend(FrontendConfig(sample_rate=16000, max_seconds=1.0))
    return CaptionPairDataset(
        ManifestSource(records), frontend, seed=0, train=train, caption_templates=templates
    )


def test_label_captions_write_every_label_into_every_template():
    assert label_captions(["Dog bark", "chirping_birds"], TEMPLATES[:2]) == [
        "the sound of a dog bark",
        "dog bark can be heard",
        "the sound of a chirping birds",
        "chirping birds can be heard",
    ]
    # Two templates that give the same text for a label give it once.
    assert label_captions(["TV"], ["{label}", "{label}", "a {label}"]) == ["TV", "a TV"]
    assert label_text("  Sea   waves ") == "sea waves"


def test_a_labelled_clip_without_captions_is_described_by_its_label(tmp_path):
    dataset = _dataset([_record(tmp_path, "dog-1", labels=["Dog bark"])], TEMPLATES)
    expected = {"the sound of a dog bark", "dog bark can be heard", "a recording of dog bark"}
    seen = set()
    for epoch in range(40):
        item = dataset[(epoch, 0)]
        assert item["caption"] in expected
        assert item["caption_key"] == caption_key(item["caption"])
        seen.add(item["caption"])
    assert seen == expected  # the caption is drawn among all templates, not always the first
    evaluation = _dataset([_record(tmp_path, "dog-1", labels=["Dog bark"])], TEMPLATES, train=False)
    assert evaluation[(0, 0)]["caption"] == "the sound of a dog bark"


def test_captions_win_over_templates_and_templates_are_optional(tmp_path):
    record = _record(tmp_path, "rain-1", captions=["rain falls on a tin roof"], labels=["Rain"])
    assert {_dataset([record], TEMPLATES)[(e, 0)]["caption"] for e in range(10)} == {
        "rain falls on a tin roof"
    }
    assert _dataset([record], None)[(0, 0)]["caption"] == "rain falls on a tin roof"


def test_clips_that_cannot_be_described_are_named(tmp_path):
    bare = _record(tmp_path, "bare-clip")
    with pytest.raises(DataError, match=r"'bare-clip'.*neither captions nor labels"):
        _dataset([bare], TEMPLATES)[(0, 0)]
    labelled = _record(tmp_path, "labelled-clip", labels=["Rooster"])
    with pytest.raises(DataError, match=r"'labelled-clip'.*no captions.*data\.caption_templates"):
        _dataset([labelled], None)[(0, 0)]


def test_templates_are_validated():
    assert check_templates(("a {label}",), "x") == ["a {label}"]
    with pytest.raises(ConfigError, match=r"x\[1\]: template 'no slot' lacks the \{label\} slot"):
        check_templates(["a {label}", "no slot"], "x")
    for bad in ([], "the sound of a {label}"):
        with pytest.raises(ConfigError, match="non-empty list"):
            check_templates(bad, "x")
    with pytest.raises(ConfigError, match=r"caption_templates\[0\]"):
        CaptionPairDataset(ManifestSource([]), AudioFrontend(FrontendConfig()), 0, caption_templates=["x"])


def test_data_config_option_defaults_to_off_and_names_the_bad_key():
    assert DataConfig().caption_templates is None
    config = load_config(PretrainConfig, None, ['data.caption_templates=["a {label}", "{label} barks"]'])
    assert config.data.caption_templates == ("a {label}", "{label} barks")
    with pytest.raises(ConfigError, match=r"data\.caption_templates\[1\]: template 'oops'"):
        load_config(PretrainConfig, None, ['data.caption_templates=["a {label}", "oops"]'])
    with pytest.raises(ConfigError, match=r"data\.caption_templates"):
        load_config(PretrainConfig, None, ["data.caption_templates=[]"])
