"""`mint.hardware`: native bf16 as the CPU's own flags say, and what "auto" precision and dtypes become."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mint import hardware
from mint.errors import ConfigError
from mint.llm.config import LLMConfig

CPUINFO = Path("/proc/cpuinfo")


@pytest.mark.skipif(
    not CPUINFO.is_file() or torch.cuda.is_available(), reason="reads Linux's CPU flags; no GPU in the way"
)
def test_native_bf16_follows_the_cpu_flags():
    # The kernel's own list of CPU features, an independent reading of what PyTorch's checks report.
    flags = {
        flag
        for line in CPUINFO.read_text().splitlines()
        if line.startswith("flags")
        for flag in line.split(":", 1)[1].split()
    }
    assert hardware.native_bf16() == bool(flags & {"avx512_bf16", "amx_bf16"})


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_only_where_the_hardware_has_it(monkeypatch, native):
    monkeypatch.setattr(hardware, "native_bf16", lambda: native)
    assert hardware.resolve_precision("auto") == ("bf16" if native else "fp32")
    assert hardware.torch_dtype("auto", "llm.dtype") == (torch.bfloat16 if native else torch.float32)
    # Explicit settings are kept whatever the hardware.
    assert hardware.resolve_precision("bf16") == "bf16" and hardware.resolve_precision("fp32") == "fp32"
    assert hardware.torch_dtype("bfloat16", "llm.dtype") == torch.bfloat16


def test_unknown_dtype_names_the_setting():
    with pytest.raises(ConfigError, match=r"llm\.dtype: got 'float16'"):
        LLMConfig(name_or_path="x", dtype="float16").validate()
    with pytest.raises(ConfigError, match=r"encoder\.dtype: got 'half'"):
        hardware.torch_dtype("half", "encoder.dtype")


def test_the_trainer_resolves_auto_precision(monkeypatch):
    from mint.training.trainer import build_accelerator

    monkeypatch.setattr(hardware, "native_bf16", lambda: False)
    assert build_accelerator("auto").mixed_precision == "no"
    monkeypatch.setattr(hardware, "native_bf16", lambda: True)
    assert build_accelerator("auto").mixed_precision == "bf16"
    build_accelerator("fp32")
