"""Input checks shared by the stage-1 objectives."""

from __future__ import annotations

import torch

from mint.errors import MintError


class ObjectiveInputError(MintError, ValueError):
    """A tensor handed to a stage-1 objective has the wrong shape or dtype."""


def require_dims(name: str, tensor: torch.Tensor, dims: int, layout: str) -> None:
    """Raise unless `tensor` has `dims` dimensions; `layout` (e.g. "[B, Nq, D]") goes in the message."""
    if tensor.dim() != dims:
        raise ObjectiveInputError(f"{name}: expected a {layout} tensor, got shape {tuple(tensor.shape)}")


def require_integer(name: str, tensor: torch.Tensor) -> None:
    if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
        raise ObjectiveInputError(f"{name}: expected an integer tensor, got dtype {tensor.dtype}")


def upcast(tensor: torch.Tensor) -> torch.Tensor:
    """Half-precision values to float32 for softmax and cross-entropy; float64 stays float64."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))
