"""A stage-2 step with the real frozen SmolLM2-135M-Instruct, three ways:

- plain fp32: fp32 weights, transformers' default attention (SDPA), the output layer at every position and
  every row's chat-template system turn computed in full: the step as the training-speed issue measured it;
- fp32 with mint's two savings (the output layer only where a response token is predicted; the system turn,
  identical in every row, run once for the batch);
- what the demo runs: those savings with bf16 weights under bf16 autocast and eager attention.

Forward and backward of the instruction loss at batch 16 (the demo's Bridge-Net: hidden 256, 2 layers,
16 queries; stand-in encoder features of a 3 s clip), the same items for all, timed interleaved so that
the machine's load hits them alike. Needs the weights (`mint weights fetch smollm2-135m-instruct`).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from common import Comparison

STEPS = 4
BATCH = 16
FRAMES = 150  # Whisper tiny.en's frames of a 3 s clip
FEATURES = 384  # and their width
ITEMS = (
    ("how many sounds are there?", "two"),
    ("what comes first?", "falling chirp"),
    ("is the siren loud or soft?", "soft"),
    ("what word is spoken?", "seven"),
    ("who is speaking, a man or a woman?", "a woman"),
    ("can you hear a bell?", "yes"),
    ("describe the sound.", "a brief loud engine hum followed by a long soft click train"),
    ("what kind of background noise is there?", "pink noise"),
)


def _model(dtype: str, attention: str, savings: bool):
    from mint.demo.config import DemoModelConfig
    from mint.encoders.config import EncoderConfig
    from mint.llm.config import LLMConfig
    from mint.modeling import MintConfig, MintModel

    demo = DemoModelConfig()
    config = MintConfig(
        encoder=EncoderConfig(kind="mel", hidden_size=FEATURES),  # stands in for Whisper tiny.en's width
        bridge=demo.bridge,
        llm=LLMConfig(
            name_or_path="weights:smollm2-135m-instruct",
            dtype=dtype,
            attn_implementation=attention,
            system_prompt=demo.system_prompt,
        ),
    )
    torch.manual_seed(0)
    model = MintModel.from_config(config).train()
    model.llm.head_at_targets = savings
    model.llm.share_prompt_prefix = savings
    return model


def run(work: Path) -> list[Comparison]:
    from mint.hardware import native_bf16

    models = {
        "plain": (_model("float32", "sdpa", savings=False), torch.float32),
        "fp32": (_model("float32", "sdpa", savings=True), torch.float32),
    }
    # Without native bf16 the demo's "auto" dtype is float32 here: its path is "fp32" with eager attention.
    fast_key, dtype_name, dtype = (
        ("bf16", "bfloat16", torch.bfloat16) if native_bf16() else ("fp32-eager", "float32", torch.float32)
    )
    models[fast_key] = (_model(dtype_name, "eager", savings=True), dtype)
    weights = "bf16 weights + autocast" if fast_key == "bf16" else "fp32 weights (no native bf16 here)"
    reference = models["plain"][0]
    for key in ("fp32", fast_key):
        for name in ("audio_norm", "bridge", "llm_proj"):
            getattr(models[key][0], name).load_state_dict(getattr(reference, name).state_dict())
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(BATCH, FRAMES, FEATURES, generator=generator)
    mask = torch.ones(BATCH, FRAMES, dtype=torch.bool)
    instructions = [ITEMS[row % len(ITEMS)][0] for row in range(BATCH)]
    responses = [ITEMS[row % len(ITEMS)][1] for row in range(BATCH)]
    times: dict[str, list[float]] = {key: [] for key in models}
    losses: dict[str, float] = {}
    for step in range(STEPS + 1):  # the first step of each is untimed warm-up
        for key, (model, dtype) in models.items():
            started = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                loss = model.instruct_loss(model.normalise_audio(features, mask), instructions, responses)
            loss.backward()
            elapsed = time.perf_counter() - started
            model.zero_grad(set_to_none=True)
            if step:
                times[key].append(elapsed)
            else:
                losses[key] = float(loss.detach())
    item = f"stage-2 step, frozen SmolLM2-135M-Instruct, batch {BATCH}, forward+backward"
    note = (
        f"median of {STEPS} interleaved steps each; same Bridge-Net weights and items, first-step loss "
        f"{losses['plain']:.4f} (plain fp32), {losses['fp32']:.4f} (fp32), {losses[fast_key]:.4f} ({fast_key})"
    )
    ours = f"{weights}, eager attention, output layer at targets, system turn once"
    return [
        Comparison(
            item=item,
            baseline="plain fp32: SDPA, output layer at every position, system turn per row",
            ours=ours,
            baseline_s=statistics.median(times["plain"]),
            ours_s=statistics.median(times[fast_key]),
            target=3.0,
            note=note,
        ),
        Comparison(
            item=item,
            baseline="fp32, SDPA, output layer at targets, system turn once",
            ours=ours,
            baseline_s=statistics.median(times["fp32"]),
            ours_s=statistics.median(times[fast_key]),
            note=f"the share of {weights.split(' (')[0]} and eager attention alone",
        ),
    ]
