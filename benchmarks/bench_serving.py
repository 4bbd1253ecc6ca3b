"""`mint serve` under 16 concurrent clients: one request per model call vs batched model calls.

The served model is configs/instruct/tiny.yaml (Whisper tiny.en encoder on 3-s clips, a 2-layer
Bridge-Net) with a random-weight LLM of SmolLM-135M's shapes (10 of its 30 layers, see
bench_generation), saved to a folder and loaded as `mint serve` loads it. Each server runs for real
(uvicorn on a local port, in a thread of this process); 16 client threads send 64 `/caption` requests
(16 different 3-s clips, greedy, at most 20 new tokens) as fast as the server answers. The baseline is
the same server with `max_batch=1`, which is what the server did before batching: one request per model
call. Throughput is requests per second; both servers must give every clip the same caption.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import REPO, Comparison

CLIENTS = 16
REQUESTS = 64
CLIPS = 16
MAX_NEW_TOKENS = 20
TARGET = 3.0


def _model(work: Path) -> Path:
    import torch
    from bench_generation import save_random_smollm_135m

    from mint.config import load_config
    from mint.modeling import MintModel
    from mint.training.config import InstructConfig

    llm = save_random_smollm_135m(work / "smollm-135m-random")
    config = load_config(
        InstructConfig, REPO / "configs/instruct/tiny.yaml", [f"model.llm.name_or_path={llm}"]
    )
    torch.manual_seed(0)
    return MintModel.from_config(config.model).save_pretrained(work / "served-model")


def _clips(work: Path) -> list[bytes]:
    from mint.data.synth import SynthSpec, generate_corpus

    generate_corpus(
        SynthSpec(num_clips=CLIPS, seed=3, clip_seconds=3.0, max_events=2), work, 1, {"test": 1.0}
    )
    return [path.read_bytes() for path in sorted((work / "audio").glob("*.wav"))]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(model_dir: Path, max_batch: int) -> tuple[Callable[[], None], str]:
    """Start `mint serve`'s app on a local port; return a function that stops it, and its address."""
    import uvicorn

    from mint.inference import MintPipeline
    from mint.serving import ServeLimits, create_app

    limits = ServeLimits(max_batch=max_batch, queue=REQUESTS, timeout_s=600.0)
    app = create_app(MintPipeline.from_pretrained(model_dir, batch_size=CLIENTS), None, limits)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the benchmark's server did not start")
        time.sleep(0.05)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=30)

    return stop, f"http://127.0.0.1:{port}"


def _load(address: str, clips: list[bytes]) -> tuple[float, dict[int, set[str]]]:
    """Seconds for REQUESTS captions sent by CLIENTS threads, and the captions each clip got."""
    import httpx

    captions: dict[int, set[str]] = {}

    def send(client: httpx.Client, number: int) -> None:
        clip = number % len(clips)
        response = client.post(
            f"{address}/caption",
            files={"file": (f"clip{clip}.wav", clips[clip], "audio/wav")},
            data={"max_new_tokens": str(MAX_NEW_TOKENS)},
            timeout=600,
        )
        response.raise_for_status()
        captions.setdefault(clip, set()).add(response.json()["caption"])

    # One client, shared by the threads (its connection pool is thread-safe), with a connection each.
    with (
        httpx.Client(limits=httpx.Limits(max_connections=CLIENTS)) as client,
        ThreadPoolExecutor(CLIENTS) as pool,
    ):
        list(pool.map(functools.partial(send, client), range(CLIENTS)))  # warm-up: one round, untimed
        started = time.perf_counter()
        list(pool.map(functools.partial(send, client), range(REQUESTS)))
        elapsed = time.perf_counter() - started
    return elapsed, captions


def run(work: Path) -> list[Comparison]:
    model_dir, clips = _model(work), _clips(work / "clips")
    results = {}
    for max_batch in (1, CLIENTS):
        stop, address = _serve(model_dir, max_batch)
        try:
            results[max_batch] = _load(address, clips)
        finally:
            stop()
    (one_s, one_captions), (batched_s, batched_captions) = results[1], results[CLIENTS]
    # Each clip got one caption from every request to either server.
    same = one_captions == batched_captions and all(len(texts) == 1 for texts in one_captions.values())
    return [
        Comparison(
            item=f"server: {REQUESTS} captions from {CLIENTS} concurrent clients (SmolLM-135M-shaped LLM)",
            baseline="one request per model call",
            ours=f"batched (max_batch {CLIENTS})",
            baseline_s=one_s,
            ours_s=batched_s,
            target=TARGET,
            note=(
                f"throughput {REQUESTS / one_s:.2f} vs {REQUESTS / batched_s:.2f} requests/s; every clip got "
                f"the same caption from both servers: {same}"
            ),
        )
    ]
