"""What every Hugging Face adapter promises: frozen, eval-only, bf16 option, identity that tracks weights."""

from __future__ import annotations

import json

import pytest
import torch
from encoders_checkpoints import HF_KINDS

from mint.encoders import EncoderConfig, build_encoder


def _clips(sample_rate: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(4)
    lengths = torch.tensor([sample_rate, sample_rate // 2])
    batch = 0.3 * torch.randn(2, sample_rate, generator=generator)
    batch[1, sample_rate // 2 :] = 0.0
    return batch, lengths


@pytest.mark.parametrize("kind", HF_KINDS)
def test_frozen_eval_only_and_no_graph(kind: str, make_checkpoint) -> None:
    encoder = build_encoder(EncoderConfig(kind=kind, name_or_path=str(make_checkpoint(kind))))
    assert any(True for _ in encoder.parameters())
    assert not any(p.requires_grad for p in encoder.parameters())
    parent = torch.nn.ModuleDict({"encoder": encoder, "head": torch.nn.Linear(encoder.hidden_size, 2)})
    parent.train()
    assert parent["head"].training
    assert not any(module.training for module in encoder.modules())

    batch, lengths = _clips(encoder.sample_rate)
    output = encoder(batch.requires_grad_(), lengths)
    assert not output.features.requires_grad
    assert output.features.dtype == torch.float32 and output.mask.dtype == torch.bool
    assert output.features.shape[:2] == output.mask.shape
    assert output.features.shape[2] == encoder.hidden_size
    assert torch.all(output.features[~output.mask] == 0)


@pytest.mark.parametrize("kind", HF_KINDS)
def test_bfloat16_weights_give_float32_outputs_close_to_float32(kind: str, make_checkpoint) -> None:
    path = str(make_checkpoint(kind))
    full = build_encoder(EncoderConfig(kind=kind, name_or_path=path))
    half = build_encoder(EncoderConfig(kind=kind, name_or_path=path, dtype="bfloat16"))
    assert all(p.dtype == torch.bfloat16 for p in half.parameters() if p.is_floating_point())

    batch, lengths = _clips(full.sample_rate)
    reference, approximate = full(batch, lengths), half(batch, lengths)
    assert approximate.features.dtype == torch.float32
    assert torch.equal(reference.mask, approximate.mask)
    real_ref, real_approx = reference.features[reference.mask], approximate.features[reference.mask]
    cosine = torch.nn.functional.cosine_similarity(real_ref, real_approx, dim=-1)
    assert cosine.min() > 0.98
    assert (real_ref - real_approx).abs().max() < 0.1 * real_ref.abs().max()
    assert full.identity()["dtype"] == "float32" and half.identity()["dtype"] == "bfloat16"


@pytest.mark.parametrize("kind", HF_KINDS)
def test_identity_changes_when_the_weights_change(kind: str, make_checkpoint, tmp_path) -> None:
    path = tmp_path / "checkpoint"
    make_checkpoint(kind, seed=0, path=path)
    before = build_encoder(EncoderConfig(kind=kind, name_or_path=str(path))).identity()
    assert json.loads(json.dumps(before)) == before
    assert before["kind"] == kind and before["name_or_path"] == str(path)
    assert len(before["weights_hash"]) == 64

    make_checkpoint(kind, seed=1, path=path)
    after = build_encoder(EncoderConfig(kind=kind, name_or_path=str(path))).identity()
    assert after["weights_hash"] != before["weights_hash"]
    assert after["config_hash"] == before["config_hash"]
    assert after != before
