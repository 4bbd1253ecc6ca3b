"""`mint demo`: procedural corpus -> stage 1 -> stage 2 -> held-out evaluation -> report.

By default on real pretrained weights (Whisper tiny.en, a MiniLM-initialised Bridge-Net, frozen
SmolLM2-135M-Instruct); `llm: standin` trains a small GPT-2 on the corpus text instead, the fast path.

Each step writes into its own folder under `output_dir` and is skipped when its result is already
there, so an interrupted demo picks up where it stopped.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from mint.config import save_config
from mint.data.manifest import read_manifest
from mint.data.synth.corpus import SynthSpec, generate_corpus, single_event_spec
from mint.data.synth.long_scenes import LongSceneSpec, generate_long_corpus
from mint.demo.config import DemoConfig
from mint.demo.evaluate import evaluate_demo
from mint.demo.llm_corpus import answer_documents, context_documents, corpus_texts
from mint.demo.report import write_report
from mint.demo.standin_llm import build_word_tokenizer, train_standin_llm
from mint.llm.config import LLMConfig
from mint.modeling.config import MintConfig
from mint.training.config import DataConfig, InstructConfig, InstructDataConfig, PretrainConfig
from mint.training.instruct import run_instruction_tuning
from mint.training.pretrain import run_feature_caching, run_pretraining
from mint.training.runtime import configure_torch

logger = logging.getLogger(__name__)


STANDIN = "standin"


def _corpus(config: DemoConfig, root: Path) -> dict[str, Path]:
    corpus = config.corpus
    total = corpus.train_clips + corpus.test_clips
    scenes = SynthSpec(
        num_clips=total,
        seed=config.seed,
        clip_seconds=corpus.clip_seconds,
        max_events=corpus.max_events,
        speech_share=corpus.speech_share,
        timing=corpus.timing,
    )
    generate_corpus(
        scenes,
        root / "scenes",
        workers=corpus.workers,
        splits={"train": corpus.train_clips / total, "test": corpus.test_clips / total},
    )
    single = single_event_spec(
        corpus.single_event_clips, seed=config.seed + 1, clip_seconds=corpus.clip_seconds
    )
    generate_corpus(single, root / "single-event", workers=corpus.workers, splits={"test": 1.0})
    manifests = {
        "train": root / "scenes" / "train.jsonl",
        "test": root / "scenes" / "test.jsonl",
        "single": root / "single-event" / "test.jsonl",
    }
    if corpus.validation_clips > 0:
        validation = dataclasses.replace(scenes, num_clips=corpus.validation_clips, seed=config.seed + 3)
        generate_corpus(validation, root / "validation", workers=corpus.workers, splits={"validation": 1.0})
        manifests["validation"] = root / "validation" / "validation.jsonl"
    if corpus.speech_share > 0 and corpus.speech_test_clips > 0:
        speech = SynthSpec(
            num_clips=corpus.speech_test_clips,
            seed=config.seed + 2,
            clip_seconds=corpus.clip_seconds,
            max_events=min(2, corpus.max_events),
            speech_share=1.0,
            speech_voices="held_out",
        )
        generate_corpus(speech, root / "speech", workers=corpus.workers, splits={"test": 1.0})
        manifests["speech"] = root / "speech" / "test.jsonl"
    if corpus.long_recordings > 0:
        long = LongSceneSpec(
            num_recordings=corpus.long_recordings,
            seed=config.seed + 4,
            min_seconds=corpus.long_min_seconds,
            max_seconds=corpus.long_max_seconds,
            events_per_minute=corpus.long_events_per_minute,
        )
        generate_long_corpus(long, root / "long", workers=corpus.workers)
        manifests["long"] = root / "long" / "test.jsonl"
    return manifests


def _model_config(config: DemoConfig, tokenizer: Path | None, llm: str | None) -> MintConfig:
    model = config.model
    llm_config = None
    if llm is not None:
        llm_config = LLMConfig(
            name_or_path=llm,
            dtype=model.llm_dtype,
            system_prompt=model.system_prompt,
            attn_implementation=model.llm_attn_implementation,
            max_instruction_length=48,
            max_response_length=32,
        )
    return MintConfig(
        encoder=model.encoder,
        encoders=model.encoders,
        encoder_fusion=model.encoder_fusion,
        bridge=model.bridge,
        tokenizer=str(tokenizer) if tokenizer is not None else None,
        embed_dim=model.embed_dim,
        max_text_length=model.max_text_length,
        max_instruction_length=model.max_instruction_length,
        max_audio_seconds=config.corpus.clip_seconds,
        llm=llm_config,
        stage1_retrieval=model.stage1_retrieval,
    )


def _done(model_dir: Path) -> bool:
    return (model_dir / "checksums.json").is_file()


def run_demo(config: DemoConfig, progress: bool = True) -> dict:
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(config, out / "demo-config.yaml")
    # Threads and ordered kernels for the whole run, the stand-in LLM's training included (each stage sets
    # its own again).
    configure_torch(config.stage1)
    timings: dict[str, float] = {}

    def timed(name: str, start: float) -> None:
        timings[name] = round(time.perf_counter() - start, 1)
        logger.info("demo: %s done in %.1f s", name, timings[name])

    start = time.perf_counter()
    manifests = _corpus(config, out / "corpus")
    train = read_manifest(manifests["train"])
    texts = corpus_texts(train)
    # A Bridge-Net from a checkpoint reads with its own tokenizer; one from scratch gets the corpus's words.
    tokenizer_dir = None
    if config.model.bridge.init == "scratch":
        tokenizer_dir = out / "bridge-tokenizer"
        if not (tokenizer_dir / "tokenizer.json").is_file():
            build_word_tokenizer(texts, bert_style=True).save_pretrained(str(tokenizer_dir))
    timed("corpus", start)

    start = time.perf_counter()
    # Both stages read the frozen encoder's outputs from one cache (keyed by audio content, encoder and
    # front end), computed once here instead of at every step.
    cache = str(out / "feature-cache")
    stage1 = PretrainConfig(
        output_dir=str(out / "stage1"),
        model=_model_config(config, tokenizer_dir, None),
        data=DataConfig(
            source="manifest",
            manifest=str(manifests["train"]),
            feature_cache=cache,
            use_feature_cache=True,
            event_caption_share=config.event_caption_share,
            sequence_share=config.stage1_sequence_share,
            sequence_windows=config.sequence_windows,
        ),
        trainer=config.stage1,
        negatives=config.negatives,
    )
    run_feature_caching(stage1, progress=progress)
    timed("feature cache", start)

    start = time.perf_counter()
    if not _done(out / "stage1" / "model"):
        run_pretraining(stage1)
    timed("stage1", start)

    start = time.perf_counter()
    llm = config.llm
    if llm == STANDIN:
        llm = str(out / "standin-llm")
        if not (Path(llm) / "config.json").is_file():
            documents = texts + context_documents(train, config.seed) + answer_documents(train, config.seed)
            train_standin_llm(documents, llm, config.standin_llm, progress=progress)
    timed("llm", start)

    start = time.perf_counter()
    stage2 = InstructConfig(
        output_dir=str(out / "stage2"),
        init_from=str(out / "stage1" / "model"),
        model=_model_config(config, tokenizer_dir, llm),
        data=InstructDataConfig(
            source="manifest",
            manifest=str(manifests["train"]),
            tasks=config.tasks,
            sequence_windows=config.sequence_windows,
            feature_cache=cache,
            use_feature_cache=True,
        ),
        trainer=config.stage2,
        projector_only_steps=config.projector_only_steps,
    )
    if not _done(out / "stage2" / "model"):
        run_instruction_tuning(stage2)
    timed("stage2", start)

    start = time.perf_counter()
    evaluation = config.evaluation
    results = evaluate_demo(
        out / "stage1" / "model",
        out / "stage2" / "model",
        manifests["test"],
        manifests["train"],
        manifests["single"],
        manifests.get("speech"),
        manifests.get("validation"),
        manifests.get("long"),
        out / "eval",
        retrieval_k=evaluation.retrieval_k,
        caption_beams=evaluation.caption_beams,
        max_new_tokens=evaluation.max_new_tokens,
        qa_clips=evaluation.qa_clips,
        seed=config.seed,
        progress=progress,
        sequence_items=evaluation.sequence_items,
        sequence_windows=config.sequence_windows,
    )
    timed("evaluation", start)
    return write_report(out, config, results, timings, standin=config.llm == STANDIN)
