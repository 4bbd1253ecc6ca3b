"""The HTTP service: a `MintPipeline` (and optionally an `AudioIndex`) behind FastAPI, plus the web page.

Audio arrives as the multipart form field `file`. Every model call goes through the `ModelGate` (worker
threads, batching, bounded queue, timeout): concurrent caption, ask, classify and embed requests with the
same settings are served by one batched call, each with the answer it would get alone.

Status codes: 413 upload too large or too long, 415 not a supported audio format, 422 bad input (empty,
corrupt, bad fields; the reason is in `detail`), 408 a request body that stopped arriving, 409 the loaded
model or server cannot do this (no LLM, no index), 503 queue full, 504 timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from mint.errors import MintError, UnsupportedAudioFormatError
from mint.inference import AudioIndex, Classification, MintPipeline
from mint.serving.limits import (
    FORM_OVERHEAD_BYTES,
    BodyLimit,
    Failed,
    GateTimeout,
    ModelGate,
    QueueFull,
    ServeLimits,
)
from mint.serving.uploads import UploadProblem, read_upload

STATIC_DIR = Path(__file__).parent / "static"
MAX_TEXT_CHARS = 1000
MAX_BEAMS = 8
# A timeline is one LLM generation per segment.
MAX_SEGMENTS = 32

AudioFile = Annotated[UploadFile | None, File(description="the audio: WAV, FLAC, OGG/Vorbis or MP3")]


def _text(name: str, value: str | None, required: bool = True) -> str | None:
    if value is None or not value.strip():
        if required:
            raise UploadProblem(422, f"{name}: expected a non-empty text")
        return None
    if len(value) > MAX_TEXT_CHARS:
        raise UploadProblem(422, f"{name}: {len(value)} characters; the limit is {MAX_TEXT_CHARS}")
    return value.strip()


def _in_range(name: str, value: int, least: int, most: int) -> int:
    if not least <= value <= most:
        raise UploadProblem(422, f"{name}: expected an integer from {least} to {most}, got {value}")
    return value


def _labels(text: str) -> list[str]:
    labels = [label.strip() for label in text.split(",") if label.strip()]
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise UploadProblem(
            422, f"labels: expected two or more distinct comma-separated labels, got {text!r}"
        )
    return labels


def _install_error_handlers(app: FastAPI) -> None:
    def reply(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    @app.exception_handler(UploadProblem)
    async def _problem(_: Request, error: UploadProblem) -> JSONResponse:
        return reply(error.status, error.detail)

    @app.exception_handler(MintError)
    async def _mint(_: Request, error: MintError) -> JSONResponse:
        return reply(422, str(error))

    @app.exception_handler(UnsupportedAudioFormatError)
    async def _format(_: Request, error: UnsupportedAudioFormatError) -> JSONResponse:
        return reply(415, str(error))

    @app.exception_handler(QueueFull)
    async def _full(_: Request, error: QueueFull) -> JSONResponse:
        return reply(503, f"{error}; try again shortly", {"Retry-After": "1"})

    @app.exception_handler(GateTimeout)
    async def _timeout(_: Request, error: GateTimeout) -> JSONResponse:
        return reply(504, str(error))


def create_app(
    pipeline: MintPipeline, index: AudioIndex | None = None, limits: ServeLimits | None = None
) -> FastAPI:
    """The app; `index`, when given, must have been built with this pipeline's model."""
    limits = limits or ServeLimits()
    gate = ModelGate(
        limits.concurrency, limits.queue, limits.timeout_s, limits.max_batch, limits.max_wait_ms / 1000
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        gate.shutdown()

    app = FastAPI(
        title="mint",
        summary="MINT audio-language model: caption, question answering, zero-shot classification, search",
        lifespan=lifespan,
    )
    app.state.pipeline = pipeline
    app.state.index = index
    app.state.limits = limits
    app.state.gate = gate
    app.add_middleware(
        BodyLimit,
        max_bytes=limits.max_upload_bytes + FORM_OVERHEAD_BYTES,
        idle_timeout_s=limits.body_timeout_s,
    )
    _install_error_handlers(app)

    def require_llm(what: str) -> None:
        if not pipeline.has_llm:
            raise UploadProblem(
                409, f"{what}: the served model is a stage-1 model (no LLM); this needs a stage-2 model"
            )

    def generation(max_new_tokens: int, beams: int) -> dict[str, Any]:
        return {
            "max_new_tokens": _in_range("max_new_tokens", max_new_tokens, 1, limits.max_new_tokens),
            "num_beams": _in_range("beams", beams, 1, MAX_BEAMS),
        }

    async def audio_of(file: UploadFile | None) -> Callable[[], BinaryIO]:
        """Reads the upload now (on the event loop); the returned call decodes its header in the worker."""
        upload = await read_upload(file, limits.max_upload_bytes)
        return lambda: upload.source(limits.max_audio_seconds)

    async def batched(
        key: Hashable,
        file: UploadFile | None,
        extra: Any,
        serve: Callable[[list[np.ndarray], list[Any]], list],
    ) -> Any:
        """This request's share of one model call for every waiting request under `key` (same endpoint, same
        settings): `serve(clips, extras)` gets their decoded clips and `extra`s in order, and returns one
        result per clip. Each upload is decoded on its own, so a bad one fails its request alone."""
        audio = await audio_of(file)

        def run_batch(items: list[tuple[Callable[[], BinaryIO], Any]]) -> list:
            outcomes: list[Failed | None] = []
            clips, extras = [], []
            for source, item_extra in items:
                try:
                    # Whole (uploads are bounded by max_audio_seconds): caption and ask read a recording
                    # longer than the model's clip window by window; the others take its first clip.
                    clips.append(pipeline.load_recording(source()))
                except Exception as error:
                    outcomes.append(Failed(error))
                    continue
                extras.append(item_extra)
                outcomes.append(None)
            results = iter(serve(clips, extras) if clips else [])
            return [outcome if outcome is not None else next(results) for outcome in outcomes]

        return await gate.submit(key, (audio, extra), run_batch)

    @app.get("/health", summary="Liveness, the model, the index and the queue")
    def health() -> dict:
        model = pipeline.model
        return {
            "status": "ok",
            "model": {
                "stage": 2 if pipeline.has_llm else 1,
                "encoder": model.config.encoder.kind,
                "llm": model.config.llm.name_or_path if model.config.llm is not None else None,
                "sample_rate": pipeline.sample_rate,
                "clip_seconds": model.config.max_audio_seconds,
            },
            "index": {"clips": index.count()} if index is not None else None,
            "queue": {"admitted": gate.admitted, "capacity": gate.capacity},
            "limits": asdict(limits),
        }

    @app.post("/caption", summary="Describe the audio in one sentence (stage-2 models)")
    async def caption(
        file: AudioFile = None, max_new_tokens: Annotated[int, Form()] = 30, beams: Annotated[int, Form()] = 1
    ) -> dict:
        require_llm("caption")
        settings = generation(max_new_tokens, beams)

        def captions(clips: list[np.ndarray], _: list) -> list[str]:
            return pipeline.caption(clips, sample_rate=pipeline.sample_rate, **settings)

        key = ("caption", *settings.items())
        return {"caption": await batched(key, file, None, captions)}

    @app.post("/ask", summary="Answer a question about the audio (stage-2 models)")
    async def ask(
        question: Annotated[str, Form()],
        file: AudioFile = None,
        max_new_tokens: Annotated[int, Form()] = 30,
        beams: Annotated[int, Form()] = 1,
    ) -> dict:
        require_llm("ask")
        question = _text("question", question)
        settings = generation(max_new_tokens, beams)

        def answers(clips: list[np.ndarray], questions: list[str]) -> list[str]:
            return pipeline.ask(clips, questions, sample_rate=pipeline.sample_rate, **settings)

        key = ("ask", *settings.items())
        return {"question": question, "answer": await batched(key, file, question, answers)}

    @app.post("/timeline", summary="Captions of the windows least like the rest, with their times (stage 2)")
    async def timeline(
        file: AudioFile = None,
        segments: Annotated[int, Form()] = 8,
        max_new_tokens: Annotated[int, Form()] = 30,
        beams: Annotated[int, Form()] = 1,
    ) -> dict:
        require_llm("timeline")
        count = _in_range("segments", segments, 1, MAX_SEGMENTS)
        settings = generation(max_new_tokens, beams)

        def timelines(clips: list[np.ndarray], _: list) -> list[list[dict]]:
            return [
                [
                    {"start": part.start, "end": part.end, "caption": part.text}
                    for part in pipeline.caption_segments(
                        clip, count, sample_rate=pipeline.sample_rate, **settings
                    )
                ]
                for clip in clips
            ]

        key = ("timeline", count, *settings.items())
        return {"segments": await batched(key, file, None, timelines)}

    @app.post("/classify", summary="Zero-shot classification over comma-separated labels")
    async def classify(
        labels: Annotated[str, Form(description="comma-separated, e.g. 'dog, rain, siren'")],
        file: AudioFile = None,
        method: Annotated[str, Form(description="auto, atc or generative")] = "auto",
    ) -> dict:
        names = _labels(_text("labels", labels))
        if method == "generative":
            require_llm("classify (method generative)")

        def classifications(clips: list[np.ndarray], _: list) -> list[Classification]:
            return pipeline.classify(clips, names, method=method, sample_rate=pipeline.sample_rate)

        result = await batched(("classify", method, *names), file, None, classifications)
        ranked = zip(result.labels, result.scores, result.probabilities, strict=True)
        return {
            "label": result.label,
            "method": result.method,
            "ranking": [
                {"label": name, "score": score, "probability": chance} for name, score, chance in ranked
            ],
        }

    @app.post("/embed", summary="The audio's L2-normalised query embeddings [Nq, E], or one pooled [E]")
    async def embed(file: AudioFile = None, pooled: Annotated[bool, Form()] = False) -> dict:
        def embeddings(clips: list[np.ndarray], _: list) -> list[np.ndarray]:
            return list(pipeline.embed_audio(clips, pooled=pooled, sample_rate=pipeline.sample_rate))

        vectors = await batched(("embed", pooled), file, None, embeddings)
        return {"shape": list(vectors.shape), "pooled": pooled, "embedding": vectors.tolist()}

    @app.post("/search", summary="The indexed clips nearest to a text query or an uploaded example clip")
    async def search(
        query: Annotated[str | None, Form()] = None,
        file: AudioFile = None,
        k: Annotated[int, Form()] = 10,
        rerank: Annotated[int, Form(description="text queries: ATC candidates re-ranked by ATM")] = 32,
    ) -> dict:
        if index is None:
            raise UploadProblem(
                409, "search: the server has no index; start it with `mint serve --index PATH`"
            )
        text = _text("query", query, required=False)
        if (text is None) == (file is None):
            raise UploadProblem(
                422, "search: send either a text 'query' or an audio 'file', not both or neither"
            )
        k = _in_range("k", k, 1, limits.max_k)
        rerank = _in_range("rerank", rerank, 0, limits.max_rerank)
        if text is not None:
            hits = await gate.run(lambda: pipeline.search(text, index, k=k, rerank=rerank))
        else:
            audio = await audio_of(file)
            hits = await gate.run(lambda: pipeline.search(audio(), index, k=k, rerank=rerank))
        return {
            "query": text,
            "results": [hit.to_json() | {"audio_url": f"/clips/{hit.id}"} for hit in hits],
        }

    @app.get("/clips/{clip_id}", summary="The audio file of an indexed clip", response_class=FileResponse)
    def clip(clip_id: int) -> FileResponse:
        entry = index.entries([clip_id]).get(clip_id) if index is not None else None
        if entry is None or not index.audio_path(entry).is_file():
            raise UploadProblem(404, f"clip {clip_id}: not in the index")
        return FileResponse(index.audio_path(entry), filename=Path(entry.path).name)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
