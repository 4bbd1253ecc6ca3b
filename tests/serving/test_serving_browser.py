"""End to end in a real browser: `mint serve` on a free local port, the web page driven by Playwright in
Debian's headless Chromium (`make test` installs both: see the Makefile's browser-deps target)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mint_testing import missing

REPO = Path(__file__).resolve().parents[2]
BROWSER_DIR = Path(__file__).resolve().parent / "browser"
CHROMIUM = Path(os.environ.get("MINT_CHROMIUM", "/usr/bin/chromium"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _missing_tools() -> list[str]:
    absent = []
    if shutil.which("node") is None:
        absent.append("node (Node.js 20+)")
    if not CHROMIUM.is_file():
        absent.append(f"{CHROMIUM} (Debian package chromium)")
    if not (BROWSER_DIR / "node_modules" / "playwright-core" / "package.json").is_file():
        absent.append(f"playwright-core in {BROWSER_DIR / 'node_modules'} (npm ci --prefix {BROWSER_DIR})")
    return absent


@pytest.fixture(scope="module")
def tools() -> None:
    absent = _missing_tools()
    if not absent:
        return
    missing(f"{', '.join(absent)}; `make test` installs them (target browser-deps)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(tools, model_dir, index_path, tmp_path):
    port = _free_port()
    env = os.environ | {"PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"}
    log = (tmp_path / "serve.log").open("w")
    command = [sys.executable, "-m", "mint.cli.main", "serve", "--model", str(model_dir)]
    command += [
        "--index",
        str(index_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(url + "health", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mint serve did not come up:\n{(tmp_path / 'serve.log').read_text()}")
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_the_page_uploads_captions_classifies_searches_and_records(server, audio_dir, tmp_path):
    clip = sorted(audio_dir.glob("*.wav"))[0]
    screenshot = tmp_path / "page.png"
    script = BROWSER_DIR / "e2e.mjs"
    try:
        run = subprocess.run(
            ["node", str(script), server, str(clip), str(screenshot), "a bell rings twice"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=BROWSER_DIR,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"the browser script ran past 120 s: {error.stdout}\n{error.stderr}")
    assert run.returncode == 0, f"browser script failed:\n{run.stdout}\n{run.stderr}"
    shown = json.loads(run.stdout.strip().splitlines()[-1])
    assert "stage-2 model" in shown["status"] and "4 clips indexed" in shown["status"]
    assert shown["waveform"] > 100 and shown["spectrogram"] > 1000
    assert shown["caption"], "the page showed no caption"
    assert shown["classes"] == 5
    indexed = {path.name for path in audio_dir.glob("*.wav")}
    assert len(shown["results"]) == 4 and set(shown["results"]) == indexed
    assert shown["recorded"].endswith(" s")
    data = screenshot.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
