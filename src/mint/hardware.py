"""What this machine's hardware runs fast, for the settings that default to "auto".

bf16 pays only where the hardware multiplies in it: a GPU that supports it, or a CPU with AVX-512 BF16 or
AMX. Elsewhere PyTorch emulates it and a bf16 matrix product runs far slower than fp32 (a 1024^3 product
on an AVX2-only AMD EPYC, 2 threads: 2.39 s in bf16 against 0.039 s in fp32), so "auto" means fp32 there.
"""

from __future__ import annotations

import functools

import torch

from mint.errors import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
DTYPE_NAMES = (*DTYPES, "auto")


@functools.cache
def native_bf16() -> bool:
    """Whether bf16 matrix products run on native instructions: the CUDA device's when there is one, else
    the CPU's (AVX-512 BF16 or AMX tiles, as PyTorch's own CPU feature checks report them)."""
    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, check, lambda: False)()) for check in checks)


def resolve_precision(precision: str) -> str:
    """A training precision ("fp32", "bf16", "auto") as "fp32" or "bf16": "auto" is bf16 autocast where
    the hardware has native bf16, else fp32."""
    if precision == "auto":
        return "bf16" if native_bf16() else "fp32"
    return precision


def resolve_dtype_name(name: str) -> str:
    """A weights dtype name ("float32", "bfloat16", "auto") as "float32" or "bfloat16", as `resolve_precision`."""
    if name == "auto":
        return "bfloat16" if native_bf16() else "float32"
    return name


def check_dtype_name(name: str, where: str) -> None:
    if name not in DTYPE_NAMES:
        raise ConfigError(f"{where}: got {name!r}; expected one of {DTYPE_NAMES}")


def torch_dtype(name: str, where: str) -> torch.dtype:
    """The torch dtype of a weights dtype name ("auto" resolved for this machine); `where` names the setting."""
    check_dtype_name(name, where)
    return DTYPES[resolve_dtype_name(name)]
