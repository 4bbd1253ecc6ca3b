"""Malformed manifests and configs through the `mint` command: exit 2, one line naming the line or key.

A config error is found before anything runs: the output folder is never created.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_support import assert_clean_failure, run_mint

from mint.cli.main import main
from mint_testing import tiny_pretrain_overrides

GOOD_LINE = '{"id": "ok", "audio": "ok.wav", "captions": ["a bell rings"]}'


def _manifest(tmp_path: Path, third_line: bytes) -> Path:
    path = tmp_path / "clips.jsonl"
    path.write_bytes(GOOD_LINE.encode() + b"\n\n" + third_line + b"\n")
    return path


def _failure(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_malformed_manifest_line_through_the_command(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, b'{"id": "x", "audio": "x.wav", "captions": ["unclosed"]')
    result = run_mint("data", "prepare", "jsonl", str(manifest), "--out", str(tmp_path / "out.jsonl"))
    assert_clean_failure(result, f"{manifest}:3: not valid JSON")
    assert result.returncode == 2 and not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b'{"id": "x"}', "missing required field 'audio'"),
        (b'{"audio": "x.wav"}', "missing required field 'id'"),
        (b'{"id": "x", "audio": ""}', "field 'audio' must be a non-empty string"),
        (
            b'{"id": "x", "audio": "x.wav", "captions": "one caption"}',
            "field 'captions' must be a list of strings",
        ),
        (b'{"id": "x", "audio": "x.wav", "caption": ["typo"]}', "unknown field(s) ['caption']"),
        (b'{"id": "ok", "audio": "again.wav"}', "duplicate id 'ok'"),
        (b'"just a string"', "expected a JSON object"),
        (b'{"id": "caf\xe9", "audio": "x.wav"}', "not UTF-8 text"),
    ],
)
def test_manifest_problems_name_the_line(
    line: bytes, problem: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    manifest = _manifest(tmp_path, line)
    err = _failure(capsys, ["data", "prepare", "jsonl", str(manifest), "--out", str(tmp_path / "o.jsonl")])
    assert f"{manifest}:3: {problem}" in err


def test_pretrain_on_a_malformed_manifest_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    manifest = _manifest(tmp_path, b'{"id": "x", "audio": "x.wav", "qa": [{"question": "how many?"}]}')
    overrides = [
        *tiny_pretrain_overrides(tmp_path / "run"),
        "data.source=manifest",
        f"data.manifest={manifest}",
    ]
    err = _failure(capsys, ["pretrain", "configs/pretrain/tiny.yaml", *overrides])
    assert f"{manifest}:3: qa[0] must be" in err


def test_unknown_config_key_in_a_file_through_the_command(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("model:\n  bridge:\n    hiden_size: 64\ntrainer:\n  max_steps: 3\n")
    out = tmp_path / "run"
    result = run_mint("pretrain", str(config), f"output_dir={out}")
    assert_clean_failure(result, f"{config}: model.bridge.hiden_size: unknown key")
    assert result.returncode == 2 and not out.exists()


def test_wrong_type_override_through_the_command(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_mint("pretrain", "configs/pretrain/tiny.yaml", f"output_dir={out}", "trainer.max_steps=ten")
    assert_clean_failure(result, "trainer.max_steps: expected an integer, got 'ten'")
    assert result.returncode == 2 and not out.exists()


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("trainer.max_stepz=3", "trainer.max_stepz: unknown key"),
        ("data.synthetic.clips=3", "data.synthetic.clips: unknown key"),
        ("trainer.lr=fast", "trainer.lr: expected a number"),
        ("trainer.betas=[0.9]", "trainer.betas: expected 2 items"),
        ("trainer.progress_bar=maybe", "trainer.progress_bar: expected true or false"),
        ("trainer.precision=fp8", "trainer.precision: expected one of ['fp32', 'bf16', 'auto']"),
        ("model=3", "model: expected a mapping"),
        ("trainer.max_steps.value=3", "trainer.max_steps is a value, not a section"),
        ("trainer.max_steps", "expected KEY=VALUE"),
        ("trainer.betas=[0.9", "value is not valid YAML (line 1, column 5"),
        ("trainer.max_steps=0", "trainer.max_steps: expected >= 1"),
        ("trainer.lr=.nan", "trainer.lr: expected a finite number > 0"),
        ("trainer.lr=.inf", "trainer.lr: expected a finite number > 0"),
        ("trainer.num_workers=-2", "trainer.num_workers: expected >= 0"),
        ("trainer.warmup_steps=-3", "trainer.warmup_steps: expected >= 0"),
        ("trainer.min_lr_ratio=5", "trainer.min_lr_ratio: expected a fraction in [0, 1]"),
        ("trainer.max_grad_norm=-1", "trainer.max_grad_norm: expected a finite number >= 0"),
        ("data.source=manifest", "data.manifest: required when data.source is 'manifest'"),
    ],
)
def test_config_problems_name_the_key(
    override: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    err = _failure(capsys, ["pretrain", "configs/pretrain/tiny.yaml", f"output_dir={out}", override])
    assert named in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"trainer: [1, 2\n", "not valid YAML (line 2, column 1: expected ',' or ']'"),
        (b"- a list\n- not a mapping\n", "expected a mapping at the top level"),
        (b"trainer:\n  max_steps: 3  # caf\xe9\n", "not UTF-8 text"),
    ],
)
def test_unreadable_config_files_are_named(
    content: bytes, problem: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = tmp_path / "run.yaml"
    config.write_bytes(content)
    err = _failure(capsys, ["pretrain", str(config), f"output_dir={tmp_path / 'run'}"])
    assert f"{config}: {problem}" in err
    missing = tmp_path / "missing.yaml"
    assert f"{missing}: config file not found" in _failure(capsys, ["pretrain", str(missing)])
