"""Bad audio through the `mint` command: refused with the file and the problem named, never a traceback.

Batch jobs skip and report: `mint data prepare` summarises the files whose header is unusable,
`mint cache-features` caches the good clips and lists every bad one, and `mint pretrain` stops
with one line naming the clip (also when the clip was decoded in a DataLoader worker process).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from reliability_support import assert_clean_failure, encode, run_mint, tone

from mint.cli.main import main
from mint_testing import tiny_model_overrides, tiny_pretrain_overrides

RATE = 16000

# The problem each bad file must be reported with; None marks the good files.
PROBLEMS: dict[str, str | None] = {
    "good/tone.wav": None,
    "good/tone_stereo.flac": None,
    "bad/empty.wav": r"empty file \(0 bytes\)",
    "bad/zero_samples.wav": "contains no audio samples",
    "bad/notes.wav": "not a recognised audio file",
    "bad/picture.flac": "not a recognised audio file",
    "bad/archive.ogg": "not a recognised audio file",
    "bad/nan.wav": "contains NaN or infinite samples",
    "bad/inf.wav": "contains NaN or infinite samples",
    "bad/truncated.flac": "(corrupt|truncated)",
    "bad/cut_short.mp3": "(corrupt|truncated|no audio samples)",
    "bad/corrupt.flac": "corrupt",
}
# Files whose header is sound: only decoding their data shows the problem.
DATA_PROBLEMS = {"bad/nan.wav", "bad/inf.wav", "bad/truncated.flac", "bad/cut_short.mp3", "bad/corrupt.flac"}


def _bad_floats(value: float) -> np.ndarray:
    samples = np.full(RATE, 0.1, np.float32)
    samples[::700] = value  # every crop window of a training clip meets one
    return samples


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("refusal")
    (root / "good").mkdir()
    (root / "bad").mkdir()
    sf.write(root / "good/tone.wav", tone(1.0, RATE), RATE)
    sf.write(root / "good/tone_stereo.flac", tone(1.0, 22050, channels=2), 22050)
    (root / "bad/empty.wav").write_bytes(b"")
    sf.write(root / "bad/zero_samples.wav", np.zeros((0, 1), np.float32), RATE)
    (root / "bad/notes.wav").write_text("a dog barks twice, then a door closes\n")
    (root / "bad/picture.flac").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("clip.ogg", b"not really")
    (root / "bad/archive.ogg").write_bytes(archive.getvalue())
    sf.write(root / "bad/nan.wav", _bad_floats(np.nan), RATE, subtype="FLOAT")
    sf.write(root / "bad/inf.wav", _bad_floats(np.inf), RATE, subtype="FLOAT")
    flac = encode(tone(2.0, RATE), RATE, "FLAC")
    (root / "bad/truncated.flac").write_bytes(flac[: len(flac) // 2])
    mp3 = encode(tone(2.0, RATE), RATE, "MP3")
    (root / "bad/cut_short.mp3").write_bytes(mp3[: len(mp3) // 3])
    damaged = bytearray(flac)
    damaged[len(damaged) // 2 : len(damaged) // 2 + 64] = bytes(range(64))
    (root / "bad/corrupt.flac").write_bytes(bytes(damaged))
    return root


def _manifest(path: Path, root: Path, names: list[str]) -> Path:
    records = [
        {"id": name, "audio": str(root / name), "captions": [f"the sound in {name}"]} for name in names
    ]
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def test_prepare_skips_and_summarises_unreadable_files(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "prepared.jsonl"
    result = run_mint("data", "prepare", "folder", str(dataset), "--out", str(out))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    header_problems = {name for name, problem in PROBLEMS.items() if problem and name not in DATA_PROBLEMS}
    assert f"skipped {len(header_problems)} clips:" in result.stdout
    for name in header_problems:
        assert re.search(re.escape(name) + r" \(" + PROBLEMS[name], result.stdout), (name, result.stdout)
    written = {json.loads(line)["id"] for line in out.read_text().splitlines()}
    assert written == {
        name.removesuffix(Path(name).suffix) for name in PROBLEMS if name not in header_problems
    }

    only_bad = tmp_path / "only_bad"
    (only_bad / "bad").mkdir(parents=True)
    for name in header_problems:
        (only_bad / name).write_bytes((dataset / name).read_bytes())
    assert main(["data", "prepare", "folder", str(only_bad), "--out", str(tmp_path / "none.jsonl")]) == 1
    assert "wrote 0 records" in capsys.readouterr().out


def test_cache_features_caches_the_good_clips_and_reports_each_bad_one(dataset: Path, tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "all.jsonl", dataset, list(PROBLEMS))
    cache = tmp_path / "cache"
    result = run_mint(
        "cache-features",
        "configs/pretrain/tiny.yaml",
        *tiny_model_overrides(),
        "data.source=manifest",
        f"data.manifest={manifest}",
        f"data.feature_cache={cache}",
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    bad = {name: problem for name, problem in PROBLEMS.items() if problem}
    assert f"2 written, 0 already cached, {len(bad)} failed" in result.stdout
    for name, problem in bad.items():
        line = re.escape(f"skipped {name}: {dataset / name}: ") + f".*{problem}"
        assert re.search(line, result.stdout), (name, result.stdout)
    assert len(list(cache.rglob("*.safetensors"))) == 2


def test_pretrain_stops_with_one_line_naming_the_clip_decoded_in_a_worker(
    dataset: Path, tmp_path: Path
) -> None:
    manifest = _manifest(tmp_path / "nan.jsonl", dataset, ["bad/nan.wav"])
    out = tmp_path / "run"
    args = [*tiny_pretrain_overrides(out, steps=2), "data.source=manifest", f"data.manifest={manifest}"]
    result = run_mint("pretrain", "configs/pretrain/tiny.yaml", *args, "trainer.num_workers=1")
    stderr = assert_clean_failure(result, f"{dataset / 'bad/nan.wav'}: contains NaN or infinite samples")
    error_lines = [line for line in stderr.splitlines() if line.startswith("mint pretrain: error:")]
    assert len(error_lines) == 1 and result.returncode == 2
    assert not (out / "checkpoints").exists()
