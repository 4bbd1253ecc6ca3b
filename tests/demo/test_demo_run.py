from __future__ import annotations

import json

import yaml

from mint.cli.main import main

# The fast path: the weight-free mel front end, a small Bridge-Net from scratch and the stand-in LLM.
FAST = [
    "--llm",
    "standin",
    "model.encoder.kind=mel",
    "model.encoder.name_or_path=null",
    "model.encoder.window_seconds=null",
    "model.encoder.hidden_size=64",
    "model.bridge.init=scratch",
    "model.bridge.hidden_size=64",
    "model.bridge.num_layers=2",
    "model.bridge.num_heads=2",
    "model.bridge.intermediate_size=128",
    "model.bridge.num_queries=4",
    "model.embed_dim=32",
    "corpus.train_clips=24",
    "corpus.test_clips=8",
    "corpus.single_event_clips=11",
    "corpus.speech_test_clips=4",
    "corpus.validation_clips=6",
    "corpus.max_events=2",
    "corpus.long_recordings=2",
    "corpus.long_min_seconds=12",
    "corpus.long_max_seconds=20",
    "corpus.long_events_per_minute=12",
    "corpus.timing=true",
]


def test_demo_path_end_to_end_on_a_small_corpus(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(
        [
            "demo",
            "--out",
            str(out),
            *FAST,
            "stage1.max_steps=3",
            "stage1.batch_size=8",
            "stage1.progress_bar=false",
            "negatives.temperature=0.3",
            "stage2.max_steps=3",
            "stage2.batch_size=8",
            "stage2.progress_bar=false",
            "standin_llm.steps=3",
            "standin_llm.hidden_size=32",
            "standin_llm.num_layers=1",
            "standin_llm.num_heads=2",
            "evaluation.retrieval_k=2",
            "evaluation.caption_beams=1",
            "evaluation.max_new_tokens=4",
            "evaluation.sequence_items=12",
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    headline = {row["metric"]: row for row in report["headline"]}
    assert set(report["targets"]) <= set(headline)
    single = [
        json.loads(line) for line in (out / "corpus" / "single-event" / "test.jsonl").read_text().splitlines()
    ]
    classes = {label for record in single for label in record["labels"]}
    assert len(single) == 11
    assert headline["zero_shot_classification_accuracy"]["reference"] == 1 / len(classes)
    assert headline["text_to_audio_R@5"]["reference"] == 5 / 8
    # The re-ranking weight is chosen on the validation scenes and is what test retrieval used.
    calibration = report["results"]["rerank_calibration"]
    assert calibration["counts"]["audio"] == 6 and calibration["data"]["manifest"].endswith(
        "validation.jsonl"
    )
    assert report["results"]["retrieval"]["atm"]["weight"] == calibration["weight"]
    assert "calibrated on a validation split" in headline["text_to_audio_R@5_atm_reranked"]["what"]
    for row in headline.values():
        assert row["reference_is"] and row["value"] == row["value"]  # present and not NaN
    assert report["llm"].startswith("stand-in")
    # Stage 1 drew its ATM negatives as the demo config said.
    stage1_config = yaml.safe_load((out / "stage1" / "config.yaml").read_text())
    assert stage1_config["negatives"] == {"temperature": 0.3, "uniform_share": 0.25}
    # Spoken words: held-out voices, one word question per clip, chance is one word of the vocabulary.
    spoken = headline["spoken_word_accuracy"]
    assert spoken["reference"] < 1 / 300 and report["results"]["spoken_words"]["questions"] == 4
    assert report["weights"] == []  # nothing pretrained on the fast path
    # Both stages trained from the feature cache: one entry per training clip.
    assert len(list((out / "feature-cache").rglob("*.safetensors"))) == 24
    assert "feature cache" in report["timings_s"]
    text = (out / "report.md").read_text()
    assert "zero_shot_classification_accuracy" in text and "Example answers" in text
    # Timed questions are scored by the error of the time given, and left out of exact-match QA.
    timed = report["results"]["timed_qa"]
    assert timed["questions"] > 0 and headline["timed_answers_within_1s"]["reference"] is not None
    assert not any("when does" in example["question"] for example in report["results"]["qa"]["examples"])
    # Stage 2 trained on scenes read as several windows, and is asked about held-out ones.
    stage2_config = yaml.safe_load((out / "stage2" / "config.yaml").read_text())
    assert (
        stage2_config["data"]["tasks"]["sequence"] == 1.5
        and stage2_config["data"]["sequence_windows"] == 4
        and stage2_config["projector_only_steps"] == 150
    )
    sequence = report["results"]["sequence_qa"]
    assert 0 < sequence["questions"] <= 12 and set(sequence["forms"]) <= {"presence", "part", "order"}
    assert sum(form["questions"] for form in sequence["forms"].values()) == sequence["questions"]
    assert headline["sequence_qa_accuracy"]["reference_is"] == "majority answer per form"
    # Long recordings: onset error beside its baseline, and retrieval of recording and window.
    temporal = report["results"]["temporal"]
    assert temporal["data"]["clips_evaluated"] == 2
    assert headline["event_onset_median_error_s"]["reference_is"] == "the middle of the recording"
    assert 0 <= headline["long_recording_window@1"]["value"] <= headline["long_recording_R@1"]["value"] <= 1
    # One long recording's timeline of captioned windows, each with the events really in it.
    example = report["results"]["timeline_example"]
    assert example["segments"] and all(part["end"] > part["start"] for part in example["segments"])
    assert "Example timeline" in (out / "report.md").read_text()
    for plot in ("stage1_losses", "stage2_losses", "confusion_matrix", "recall_at_k", "timeline"):
        assert (out / f"{plot}.png").stat().st_size > 1000, plot
    printed = capsys.readouterr().out
    assert "Example captions" in printed and "report.md" in printed

    # A second run finds every stage done and only re-evaluates.
    first_stage1 = (out / "stage1" / "model" / "model.safetensors").stat().st_mtime_ns
    assert (
        main(
            [
                "demo",
                "--out",
                str(out),
                *FAST,
                "evaluation.retrieval_k=2",
                "evaluation.caption_beams=1",
                "evaluation.max_new_tokens=4",
            ]
        )
        == 0
    )
    assert (out / "stage1" / "model" / "model.safetensors").stat().st_mtime_ns == first_stage1
