"""WebDataset shards: writing from a manifest, random access, and the seeded resumable stream."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mint.audio.frontend import AudioFrontend, FrontendConfig
from mint.cli.main import main
from mint.data.manifest import ManifestRecord, QAPair, TimedEvent, read_manifest, write_manifest
from mint.data.shards import ShardSource, load_shard_index, write_shards
from mint.data.sources import ManifestSource
from mint.data.streaming import ShardStream
from mint.errors import DataError
from mint.training.config import DataConfig
from mint.training.pretrain import build_source

CLIPS = 7
SHARD_SIZE = 3


@pytest.fixture()
def manifest(tmp_path):
    """Seven short clips (WAV, FLAC and OGG) with captions, labels, QA and timed events, plus one missing file."""
    rng = np.random.default_rng(0)
    records = []
    for number in range(CLIPS):
        extension, fmt = [("wav", "WAV"), ("flac", "FLAC"), ("ogg", "OGG")][number % 3]
        path = tmp_path / "audio" / f"clip.{number}.{extension}"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, rng.uniform(-0.5, 0.5, 1600 + 100 * number).astype(np.float32), 16000, format=fmt)
        records.append(
            ManifestRecord(
                id=f"clip.{number}",
                audio=str(path),
                captions=[f"caption {number}", f"another caption {number}"],
                labels=[f"label{number % 2}"],
                qa=[QAPair(f"what is {number}?", f"answer {number}")],
                split="train",
                event_description=f"event {number}",
                events=[TimedEvent(f"label{number % 2}", 0.0, 0.05, f"a sound numbered {number}")],
            )
        )
    records.insert(4, ManifestRecord(id="gone", audio=str(tmp_path / "audio" / "gone.wav"), captions=["x"]))
    path = tmp_path / "data.jsonl"
    write_manifest(records, path)
    return path


@pytest.fixture()
def shards(manifest, tmp_path):
    out = tmp_path / "shards"
    report = write_shards(read_manifest(manifest), out, SHARD_SIZE)
    return out, report


def _summary(samples) -> list[tuple]:
    return [(s.position, s.key, s.record.id, s.audio) for s in samples]


def test_shards_hold_the_manifest_audio_bytes_and_metadata(manifest, shards):
    out, report = shards
    assert report.written == CLIPS and report.shards == 3
    assert [clip_id for clip_id, _ in report.skipped] == ["gone"]
    index = json.loads((out / "index.json").read_text())
    assert [shard["samples"] for shard in index["shards"]] == [3, 3, 1]
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"

    # Read back with tarfile alone: WebDataset layout, one <key>.<ext> + <key>.json per clip.
    originals = [r for r in read_manifest(manifest) if r.id != "gone"]
    members = []
    for shard in index["shards"]:
        with tarfile.open(out / shard["name"]) as archive:
            members += [(m.name, archive.extractfile(m).read()) for m in archive.getmembers()]
    assert [name for name, _ in members[:4]] == [
        "000000000.wav",
        "000000000.json",
        "000000001.flac",
        "000000001.json",
    ]
    for number, record in enumerate(originals):
        (audio_name, audio), (json_name, metadata) = members[2 * number : 2 * number + 2]
        assert audio == Path(record.audio).read_bytes()
        stored = json.loads(metadata)
        assert stored["audio"] == audio_name and json_name == f"{number:09d}.json"
        assert stored["id"] == record.id and stored["captions"] == record.captions
        assert stored["labels"] == record.labels and stored["split"] == "train"
        assert stored["qa"] == [{"question": q.question, "answer": q.answer} for q in record.qa]

    reader = ShardStream.from_index(str(out), shuffle=False)
    stream = list(reader)
    assert not reader.report.skipped
    assert [s.record.id for s in stream] == [r.id for r in originals]
    assert [s.position for s in stream] == list(range(CLIPS))
    assert [s.audio for s in stream] == [Path(r.audio).read_bytes() for r in originals]
    # The clip a training stage sees is the manifest's, event description and event captions included.
    reference = ManifestSource(originals)
    assert [s.clip for s in stream] == [reference.clip(i) for i in range(CLIPS)]
    assert stream[2].clip.event_captions == ["a sound numbered 2"]
    assert stream[2].clip.event_description == "event 2"


def test_shard_source_equals_the_manifest_source(manifest, shards):
    out, _ = shards
    source = build_source(DataConfig(source="shards", shards=str(out / "index.json")), 16000)
    reference = ManifestSource([r for r in read_manifest(manifest) if r.id != "gone"])
    assert isinstance(source, ShardSource) and len(source) == len(reference) == CLIPS
    frontend = AudioFrontend(FrontendConfig(sample_rate=8000, max_seconds=0.08))
    assert reference.clip(1).event_captions == ["a sound numbered 1"]
    for index in range(CLIPS):
        assert source.clip(index) == reference.clip(index)
        assert source.content_digest(index) == reference.content_digest(index)
        clip, waveform = source.load(index, frontend, np.random.default_rng(index))
        _, expected = reference.load(index, frontend, np.random.default_rng(index))
        assert clip == reference.clip(index)
        np.testing.assert_array_equal(waveform, expected)


def test_shuffle_is_a_seeded_permutation_of_each_epoch(shards):
    out, _ = shards
    index = load_shard_index(out)
    first = _summary(ShardStream(index, seed=3, buffer_size=4, epochs=2))
    assert first == _summary(ShardStream(index, seed=3, buffer_size=4, epochs=2))
    assert [p for p, *_ in first] == list(range(2 * CLIPS))
    for epoch in range(2):
        ids = [clip_id for _, _, clip_id, _ in first[epoch * CLIPS : (epoch + 1) * CLIPS]]
        assert sorted(ids) == sorted(f"clip.{n}" for n in range(CLIPS))
    orders = {
        tuple(s[2] for s in _summary(ShardStream(index, seed=seed, buffer_size=4))) for seed in range(6)
    }
    assert len(orders) > 1, "the seed does not change the order"
    sequential = tuple(f"clip.{n}" for n in range(CLIPS))
    assert orders != {sequential}


def test_a_stream_started_at_p_yields_the_tail_of_the_uninterrupted_stream(shards):
    out, _ = shards
    index = load_shard_index(out)
    full = _summary(ShardStream(index, seed=1, buffer_size=4, epochs=2))
    for start in range(2 * CLIPS + 1):
        assert _summary(ShardStream(index, seed=1, buffer_size=4, epochs=2, start=start)) == full[start:]


def _rewrite_with_bad_json(path, bad_key: str) -> None:
    with tarfile.open(path) as archive:
        members = [(m, archive.extractfile(m).read()) for m in archive.getmembers()]
    with tarfile.open(path, "w") as archive:
        for member, data in members:
            if member.name == f"{bad_key}.json":
                data = b'{"id": "broken", "captions": [unterminated'
                member.size = len(data)
            archive.addfile(member, io.BytesIO(data))


def test_corrupt_members_and_truncated_shards_are_skipped_and_reported(shards):
    out, _ = shards
    _rewrite_with_bad_json(out / "shard-000000.tar", "000000001")
    truncated = out / "shard-000001.tar"
    data = truncated.read_bytes()
    # Cut inside the second sample's audio: the first sample of this shard survives.
    with tarfile.open(truncated) as archive:
        second = archive.getmembers()[2]
    truncated.write_bytes(data[: second.offset_data + second.size // 2])

    stream = ShardStream(load_shard_index(out), shuffle=False)
    samples = list(stream)
    assert [s.record.id for s in samples] == ["clip.0", "clip.2", "clip.3", "clip.6"]
    assert [s.position for s in samples] == [0, 2, 3, 6]
    reasons = dict(stream.report.skipped)
    assert "not valid JSON" in reasons[f"{out / 'shard-000000.tar'}:000000001"]
    assert "1 of 3 samples" in reasons[str(truncated)]

    full = _summary(ShardStream(load_shard_index(out), seed=2, buffer_size=2))
    for start in range(CLIPS):
        assert _summary(ShardStream(load_shard_index(out), seed=2, buffer_size=2, start=start)) == [
            s for s in full if s[0] >= start
        ]


def test_file_url_reads_like_a_local_path(shards):
    out, _ = shards
    local = _summary(ShardStream.from_index(str(out / "index.json"), seed=5, buffer_size=3))
    url = (out / "index.json").as_uri()
    assert url.startswith("file://")
    assert _summary(ShardStream.from_index(url, seed=5, buffer_size=3)) == local
    assert len(ShardSource.from_index(url)) == CLIPS


def test_shard_command_writes_an_index_and_fails_on_an_empty_result(manifest, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["data", "shard", str(manifest), "--out", str(out), "--shard-size", "4"]) == 0
    assert [s.samples for s in load_shard_index(out).shards] == [4, 3]
    assert "wrote 7 samples in 2 shard(s)" in capsys.readouterr().out
    empty = tmp_path / "empty.jsonl"
    write_manifest([ManifestRecord(id="a", audio=str(tmp_path / "nothing.wav"))], empty)
    assert main(["data", "shard", str(empty), "--out", str(tmp_path / "none")]) == 1


def test_a_file_that_is_not_a_shard_index_is_a_clean_error(tmp_path):
    (tmp_path / "index.json").write_text('{"format": "something-else"}')
    with pytest.raises(DataError, match=r"index\.json: not a shard index"):
        load_shard_index(tmp_path)
    (tmp_path / "index.json").write_text(
        '{"format": "mint-webdataset", "version": 1, "shards": [{"name": 3}]}'
    )
    with pytest.raises(DataError, match=r"shards\[0\] must hold a 'name'"):
        load_shard_index(tmp_path / "index.json")
    with pytest.raises(DataError, match="cannot be opened"):
        load_shard_index((tmp_path / "missing.json").as_uri())
