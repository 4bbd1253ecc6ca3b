"""Every endpoint of the HTTP service with real audio bytes through the real tiny model (TestClient)."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from mint.inference import AudioIndex
from mint.serving import ServeLimits, create_app
from mint.serving.app import STATIC_DIR
from mint.serving.limits import FORM_OVERHEAD_BYTES

LIMITS = ServeLimits(max_upload_mb=0.25, max_audio_seconds=2.0, concurrency=1, queue=1, timeout_s=30.0)
GENERATION = {"max_new_tokens": 5, "num_beams": 1}


def _encoded(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def samples(audio_dir) -> np.ndarray:
    data, rate = sf.read(sorted(audio_dir.glob("*.wav"))[0], dtype="float32")
    assert rate == 16000
    return data


@pytest.fixture(scope="module")
def client(pipeline, index_path):
    app = create_app(pipeline, AudioIndex.open(index_path), LIMITS)
    with TestClient(app) as client:
        yield client


def _file(data: bytes, name: str = "clip.wav") -> dict:
    return {"file": (name, data, "application/octet-stream")}


def test_health_describes_model_index_and_queue(client):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["model"]["stage"] == 2 and body["model"]["llm"] == "random:t5"
    assert body["index"] == {"clips": 4}
    # One batch of up to 8 requests running or waiting for the model, and one more request queued.
    assert body["queue"] == {"admitted": 0, "capacity": 9}


def test_caption_ask_and_embed_equal_the_pipeline(client, pipeline, samples):
    wav = _encoded(samples, 16000, "WAV")
    flac = _encoded(samples, 16000, "FLAC")
    response = client.post("/caption", files=_file(wav), data={"max_new_tokens": 5})
    assert response.status_code == 200, response.text
    assert response.json()["caption"] == pipeline.caption((samples, 16000), **GENERATION)

    response = client.post(
        "/ask", files=_file(flac, "clip.flac"), data={"question": "is it loud?", "max_new_tokens": 5}
    )
    assert response.status_code == 200, response.text
    assert response.json()["answer"] == pipeline.ask((samples, 16000), "is it loud?", **GENERATION)

    response = client.post("/embed", files=_file(wav))
    body = response.json()
    assert body["shape"] == [4, 16] and not body["pooled"]
    np.testing.assert_allclose(
        np.array(body["embedding"]), pipeline.embed_audio((samples, 16000))[0], atol=1e-6
    )
    pooled = client.post("/embed", files=_file(wav), data={"pooled": "true"}).json()
    assert pooled["shape"] == [16] and pooled["pooled"]


def test_an_upload_longer_than_the_models_clip_is_captioned_from_all_its_windows(client, pipeline, samples):
    recording = np.concatenate([samples, samples[: len(samples) // 4]])  # 1.875 s: two 1.5 s windows
    response = client.post(
        "/caption", files=_file(_encoded(recording, 16000, "WAV")), data={"max_new_tokens": 5}
    )
    assert response.status_code == 200, response.text
    assert response.json()["caption"] == pipeline.caption((recording, 16000), **GENERATION)
    assert len(pipeline.embed_windows((recording, 16000)).starts) == 2


def test_a_timeline_of_an_upload_equals_the_pipelines(client, pipeline, samples):
    recording = np.concatenate([samples, samples[: len(samples) // 4]])  # two 1.5 s windows
    data = {"segments": 2, "max_new_tokens": 5}
    response = client.post("/timeline", files=_file(_encoded(recording, 16000, "WAV")), data=data)
    assert response.status_code == 200, response.text
    expected = pipeline.caption_segments((recording, 16000), 2, **GENERATION)
    # The two windows overlap, so one of them is the timeline.
    assert len(expected) == 1
    assert response.json()["segments"] == [
        {"start": part.start, "end": part.end, "caption": part.text} for part in expected
    ]
    response = client.post("/timeline", files=_file(_encoded(recording, 16000, "WAV")), data={"segments": 0})
    assert response.status_code == 422 and "segments" in response.text


def test_classify_ogg_with_custom_labels(client, pipeline, samples):
    ogg = _encoded(samples, 16000, "OGG")
    for method in ("generative", "atc"):
        response = client.post(
            "/classify", files=_file(ogg, "clip.ogg"), data={"labels": "dog, rain ,siren", "method": method}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        expected = pipeline.classify(io.BytesIO(ogg), ["dog", "rain", "siren"], method=method)
        assert body["method"] == method and body["label"] == expected.label
        assert [row["label"] for row in body["ranking"]] == expected.labels
        assert sum(row["probability"] for row in body["ranking"]) == pytest.approx(1.0)
    response = client.post("/classify", files=_file(ogg), data={"labels": "dog"})
    assert response.status_code == 422 and "two or more distinct" in response.json()["detail"]


def test_search_by_text_and_by_example_clip(client, pipeline, index_path, audio_dir):
    response = client.post("/search", data={"query": "a bell rings", "k": 3, "rerank": 4})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    expected = pipeline.search("a bell rings", index_path, k=3, rerank=4)
    assert [row["path"] for row in results] == [hit.path for hit in expected]
    assert all(row["match"] is not None for row in results)

    example = sorted(audio_dir.glob("*.wav"))[2]
    response = client.post("/search", files=_file(example.read_bytes()), data={"k": 2})
    assert response.json()["results"][0]["path"] == example.name

    clip = client.get(results[0]["audio_url"])
    assert clip.status_code == 200 and clip.content == (audio_dir / results[0]["path"]).read_bytes()
    assert client.get("/clips/9999").status_code == 404
    both = client.post("/search", files=_file(example.read_bytes()), data={"query": "bell"})
    assert both.status_code == 422 and "not both or neither" in both.json()["detail"]
    assert client.post("/search", data={"query": "bell", "k": 1000}).status_code == 422


def test_oversized_uploads_get_413(client, samples):
    limit = LIMITS.max_upload_bytes
    # Under the body limit (file + form overhead) but over the file limit: refused after reading.
    response = client.post("/embed", files=_file(b"\0" * (limit + 1)))
    assert response.status_code == 413 and "larger than the limit" in response.json()["detail"]
    # Over the body limit by its Content-Length: refused before the body is read.
    response = client.post("/embed", files=_file(b"\0" * (limit + FORM_OVERHEAD_BYTES + 10)))
    assert response.status_code == 413 and "request body" in response.json()["detail"]

    # A chunked body has no Content-Length: refused once the bytes received pass the limit.
    def chunked():
        yield b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        for _ in range(8):
            yield b"\0" * (limit // 4)
        yield b"\r\n--xyz--\r\n"

    response = client.post(
        "/embed", content=chunked(), headers={"Content-Type": "multipart/form-data; boundary=xyz"}
    )
    assert response.status_code == 413

    # Within the size limit but longer than max_audio_seconds (2 s).
    long_audio = _encoded(np.tile(samples, 2), 16000, "WAV")
    assert len(long_audio) < limit
    response = client.post("/caption", files=_file(long_audio, "long.wav"))
    assert response.status_code == 413 and "3.0 s of audio; the limit is 2 s" in response.json()["detail"]


def test_empty_missing_and_corrupt_uploads_get_422_and_non_audio_415_with_the_reason(client):
    response = client.post("/caption", files=_file(b"", "empty.wav"))
    assert response.status_code == 422 and "'empty.wav' is empty (0 bytes)" in response.json()["detail"]
    response = client.post("/caption")
    assert response.status_code == 422 and "no audio uploaded" in response.json()["detail"]
    response = client.post("/caption", files=_file(b"just some notes\n" * 20, "notes.txt"))
    assert response.status_code == 415
    assert "upload 'notes.txt': not a recognised audio file" in response.json()["detail"]
    truncated = _encoded(np.zeros(16000, dtype=np.float32), 16000, "WAV")[:30]
    response = client.post("/embed", files=_file(truncated, "cut.wav"))
    assert response.status_code == 422 and "cut.wav" in response.json()["detail"]
    assert client.post("/ask", files=_file(truncated)).status_code == 422  # no question field


def _wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_a_full_queue_answers_503_and_a_slow_call_504(pipeline, samples):
    wav = _encoded(samples, 16000, "WAV")
    limits = ServeLimits(
        max_upload_mb=0.25, max_audio_seconds=2.0, concurrency=1, max_batch=1, queue=1, timeout_s=20.0
    )
    app = create_app(pipeline, None, limits)
    gate = app.state.gate
    with TestClient(app) as client:
        # Hold the model as a long call would (on the app's event loop): admitted requests now wait for it.
        client.portal.call(gate.slots.acquire)
        answers: list[int] = []
        waiting = [
            threading.Thread(
                target=lambda: answers.append(client.post("/embed", files=_file(wav)).status_code)
            )
            for _ in range(2)
        ]
        for thread in waiting:
            thread.start()
        _wait_for(lambda: gate.admitted == 2)
        response = client.post("/embed", files=_file(wav))
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert "busy" in response.json()["detail"]
        client.portal.call(gate.slots.release)
        for thread in waiting:
            thread.join(timeout=20)
        assert answers == [200, 200]
        _wait_for(lambda: gate.admitted == 0)

        gate.timeout_s = 0.3
        client.portal.call(gate.slots.acquire)
        response = client.post("/embed", files=_file(wav))
        assert response.status_code == 504 and "did not answer within 0.3 s" in response.json()["detail"]
        assert gate.admitted == 0  # a request dropped before its model call leaves at once
        client.portal.call(gate.slots.release)
        gate.timeout_s = 20.0
        assert client.post("/embed", files=_file(wav)).status_code == 200


def test_a_stage1_model_without_index_refuses_what_it_cannot_do(stage1_pipeline, samples):
    wav = _encoded(samples, 16000, "WAV")
    with TestClient(create_app(stage1_pipeline, None, LIMITS)) as client:
        assert client.get("/health").json()["index"] is None
        response = client.post("/caption", files=_file(wav))
        assert response.status_code == 409 and "stage-1 model" in response.json()["detail"]
        response = client.post("/classify", files=_file(wav), data={"labels": "dog,rain"})
        assert response.status_code == 200 and response.json()["method"] == "atc"
        response = client.post("/search", data={"query": "dog"})
        assert response.status_code == 409 and "--index" in response.json()["detail"]


def test_page_static_files_and_api_docs_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for needle in ('id="file-input"', 'id="record-button"', "<canvas", "/static/app.js"):
        assert needle in page.text
    for name in ("app.js", "audio.js", "style.css"):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and asset.text == (STATIC_DIR / name).read_text()
    assert "MediaRecorder" in client.get("/static/app.js").text
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/caption", "/ask", "/classify", "/embed", "/search", "/health"} <= set(paths)


def _concurrently(client: TestClient, gate, requests: list[dict]) -> list:
    """Send `requests` (keyword arguments of client.post) at once while the model is held, so that they all
    wait together; then free the model and return the responses in order."""
    responses: list = [None] * len(requests)

    def send(position: int) -> None:
        responses[position] = client.post(**requests[position])

    client.portal.call(gate.slots.acquire)
    threads = [threading.Thread(target=send, args=(position,)) for position in range(len(requests))]
    for thread in threads:
        thread.start()
    _wait_for(lambda: gate.admitted == len(requests))
    client.portal.call(gate.slots.release)
    for thread in threads:
        thread.join(timeout=60)
    return responses


@pytest.mark.parametrize(
    ("endpoint", "method", "fields"),
    [
        ("/caption", "caption", {"max_new_tokens": "5"}),
        ("/ask", "ask", {"question": "what is making the sound?", "max_new_tokens": "5"}),
        ("/classify", "classify", {"labels": "dog, rain, siren"}),
        ("/embed", "embed_audio", {}),
    ],
)
def test_concurrent_requests_share_one_model_call_and_get_the_answers_they_get_alone(
    pipeline, audio_dir, monkeypatch, endpoint, method, fields
):
    clips = [path.read_bytes() for path in sorted(audio_dir.glob("*.wav"))]
    uploads = [*clips, b"RIFF but not audio"]  # the bad upload fails alone, inside the batch
    batch_sizes: list[int] = []
    original = getattr(pipeline, method)

    def counted(audio, *args, **kwargs):
        batch_sizes.append(len(audio))
        return original(audio, *args, **kwargs)

    monkeypatch.setattr(pipeline, method, counted)
    limits = ServeLimits(max_upload_mb=0.25, max_audio_seconds=2.0, max_batch=8, queue=0, timeout_s=60.0)
    app = create_app(pipeline, None, limits)
    requests = [{"url": endpoint, "files": _file(data), "data": fields} for data in uploads]
    with TestClient(app) as client:
        alone = [client.post(**request) for request in requests]
        assert batch_sizes == [1, 1, 1, 1]  # the bad upload never reached the model
        together = _concurrently(client, app.state.gate, requests)
    assert batch_sizes[4:] == [len(clips)]
    assert [r.status_code for r in together] == [r.status_code for r in alone] == [200] * len(clips) + [415]
    assert together[-1].json() == alone[-1].json()
    for one, shared in zip(alone[:-1], together[:-1], strict=True):
        one, shared = one.json(), shared.json()
        if endpoint == "/embed":
            # The same clip's row in a batch of equal-length clips: the same arithmetic, up to the GEMM
            # kernel's summation order (a few float32 ulps of values within [-1, 1]).
            np.testing.assert_allclose(shared["embedding"], one["embedding"], atol=1e-5)
        elif endpoint == "/classify":
            assert [row["label"] for row in shared["ranking"]] == [row["label"] for row in one["ranking"]]
            np.testing.assert_allclose(
                [row["score"] for row in shared["ranking"]],
                [row["score"] for row in one["ranking"]],
                rtol=1e-4,
            )
        else:
            assert shared == one
