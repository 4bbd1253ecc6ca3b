"""The test helpers' own contract: under CI=true a missing dependency fails the test instead of skipping it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

NEEDS_ABSENT_THINGS = """
from pathlib import Path

from mint_testing import require_module, require_shared


def test_module():
    require_module("no_such_module_mint", "pip install no-such-module")


def test_shared():
    require_shared(Path("/no/such/shared/file.csv"))
"""


@pytest.mark.parametrize(("ci", "outcome"), [("true", "2 failed"), ("", "2 skipped")])
def test_missing_dependencies_fail_under_ci_and_skip_elsewhere(tmp_path, monkeypatch, ci, outcome) -> None:
    (tmp_path / "test_absent.py").write_text(NEEDS_ABSENT_THINGS)
    monkeypatch.setenv("CI", ci)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider", str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(TESTS)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert outcome in result.stdout, result.stdout[-2000:]
    assert "no_such_module_mint (pip install no-such-module)" in result.stdout
    assert "/no/such/shared/file.csv" in result.stdout
