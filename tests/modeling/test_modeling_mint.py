from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from mint.config import load_config
from mint.errors import CheckpointError
from mint.modeling import MintConfig, MintModel
from mint_testing import tiny_model_overrides


def _tiny_config(extra: list[str] = ()) -> MintConfig:
    overrides = [item.removeprefix("model.") for item in tiny_model_overrides()]
    return load_config(MintConfig, None, [*overrides, *extra])


def _batch(model: MintModel, seed: int = 0):
    rng = np.random.default_rng(seed)
    waveforms = torch.from_numpy(rng.standard_normal((3, 16000)).astype(np.float32) * 0.1)
    lengths = torch.tensor([16000, 12000, 8000])
    ids, mask = model.tokenize(["a dog barks", "a loud siren then a bird chirp", "knock"])
    return waveforms, lengths, ids, mask


def _outputs(model: MintModel, batch) -> dict[str, torch.Tensor]:
    waveforms, lengths, ids, mask = batch
    model.eval()
    with torch.no_grad():
        audio = model.encode_audio(waveforms, lengths)
        return {
            "audio": model.audio_embeddings(audio),
            "text": model.text_embeddings(ids, mask),
            "match": model.match_logits(audio, ids, mask),
            "generate": model.generation_logits(model.query_pass(audio), ids, mask),
        }


def test_save_load_gives_identical_outputs(tmp_path):
    model = MintModel.from_config(_tiny_config())
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.01)
    batch = _batch(model)
    before = _outputs(model, batch)
    model.save_pretrained(tmp_path / "m")
    loaded = MintModel.from_pretrained(tmp_path / "m")
    after = _outputs(loaded, batch)
    for name in before:
        torch.testing.assert_close(after[name], before[name], rtol=0, atol=0)


def test_saved_files_reference_the_encoder_and_hold_only_trainable_weights(tmp_path):
    model = MintModel.from_config(_tiny_config())
    model.save_pretrained(tmp_path / "m")
    payload = json.loads((tmp_path / "m" / "config.json").read_text())
    assert payload["model_type"] == "mint" and payload["config"]["encoder"]["kind"] == "mel"
    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as handle:
        keys = set(handle.keys())
    assert not any(key.startswith("encoder.") for key in keys)
    assert keys == {name for name, _ in model.trainable_parameters()} | {
        name for name, _ in model.named_buffers() if not name.startswith("encoder.")
    }
    assert (tmp_path / "m" / "tokenizer" / "tokenizer_config.json").is_file()


def test_altered_weights_are_refused(tmp_path):
    model = MintModel.from_config(_tiny_config())
    model.save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        MintModel.from_pretrained(tmp_path / "m")
    with pytest.raises(CheckpointError, match="not a saved MINT model"):
        MintModel.from_pretrained(tmp_path / "nothing-here")


def test_encoder_is_frozen_and_layer_norm_trainable():
    model = MintModel.from_config(_tiny_config())
    assert all(not p.requires_grad for p in model.encoder.parameters())
    trainable = dict(model.trainable_parameters())
    assert "audio_norm.weight" in trainable and "bridge.queries" in trainable
    assert not any(name.startswith("encoder.") for name in trainable)
    model.train()
    assert not model.encoder.training and model.bridge.training


def test_hf_encoder_is_referenced_by_path_not_copied(tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    encoder_dir = tmp_path / "w2v"
    config = Wav2Vec2Config(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_feat_extract_layers=2,
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
    )
    Wav2Vec2Model(config).save_pretrained(encoder_dir)
    Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(encoder_dir)
    model = MintModel.from_config(
        _tiny_config(["encoder.kind=wav2vec2", f"encoder.name_or_path={encoder_dir}"])
    )
    assert model.bridge.config.encoder_hidden_size == 16
    model.save_pretrained(tmp_path / "m")
    payload = json.loads((tmp_path / "m" / "config.json").read_text())
    assert payload["config"]["encoder"]["name_or_path"] == str(encoder_dir.resolve())
    size = (tmp_path / "m" / "model.safetensors").stat().st_size
    encoder_bytes = sum(p.numel() * 4 for p in model.encoder.parameters())
    trainable_bytes = sum(t.numel() * 4 for t in model.trainable_state_dict().values())
    assert size < trainable_bytes + 64_000 and encoder_bytes > 0
    batch = _batch(model)
    torch.testing.assert_close(
        _outputs(MintModel.from_pretrained(tmp_path / "m"), batch)["audio"], _outputs(model, batch)["audio"]
    )
