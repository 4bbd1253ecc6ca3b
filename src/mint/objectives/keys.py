"""What counts as "the same content" (spec section 9), as integer keys the data supplies.

ATC targets and ATM negatives must never treat as a non-match a clip and a caption that in fact match.
Text alone cannot tell (two templates of one class, two paraphrases of one scene), so every (clip,
caption) row carries keys that say it:

* `caption`: the key of the row's caption text (`caption_key`: normalised, so case and spacing do not
  make two captions differ);
* `clip_captions`: the keys of *every* caption of the row's clip, the row's own among them;
* `groups`: keys of what makes two clips the same content: the clip itself, the class labels its
  template captions were written from, the generated corpus's event description (`content_key`).

Clip a and caption t match when t is one of a's captions (a caption shared by two clips describes both)
or when their rows share a group key. Rows are padded to a common width with `PAD`. Keys are 63-bit
digests, identical in every process and run.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mint.distributed import gather_no_grad
from mint.objectives._checks import ObjectiveInputError, require_dims, require_integer

PAD = -1


def normalise_caption(text: str) -> str:
    """Lowercase, Unicode NFC, surrounding whitespace stripped and inner whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFC", text).lower().split())


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big") >> 1


def caption_key(text: str) -> int:
    """A stable non-negative 63-bit key of the normalised caption (same in every process and run)."""
    return _digest(normalise_caption(text))


def caption_keys(texts: Sequence[str], device: torch.device | str | None = None) -> torch.Tensor:
    """`caption_key` of each text as an int64 tensor."""
    return torch.tensor([caption_key(text) for text in texts], dtype=torch.long, device=device)


def content_key(kind: str, value: str) -> int:
    """A stable non-negative 63-bit group key: `kind` ("clip", "labels", "events") keeps keys of different
    kinds apart, so a clip id never collides with an event description that spells the same text."""
    return _digest(f"{kind}\x00{value}")


@dataclass
class ContentKeys:
    """The keys of B rows (see the module docstring); integer tensors, `PAD` where a row has fewer."""

    caption: torch.Tensor  # [B]
    clip_captions: torch.Tensor  # [B, C]
    groups: torch.Tensor  # [B, G]

    def __post_init__(self) -> None:
        require_dims("keys.caption", self.caption, 1, "[B]")
        require_dims("keys.clip_captions", self.clip_captions, 2, "[B, C]")
        require_dims("keys.groups", self.groups, 2, "[B, G]")
        for name in ("caption", "clip_captions", "groups"):
            require_integer(f"keys.{name}", getattr(self, name))
        rows = self.caption.shape[0]
        if self.clip_captions.shape[0] != rows or self.groups.shape[0] != rows:
            raise ObjectiveInputError(
                f"keys: expected {rows} rows in clip_captions and groups like caption, got "
                f"{self.clip_captions.shape[0]} and {self.groups.shape[0]}"
            )
        if rows and int(self.caption.min()) < 0:
            raise ObjectiveInputError("keys.caption: every row needs a caption key (>= 0), found PAD")

    @classmethod
    def from_rows(
        cls,
        captions: Sequence[int],
        clip_captions: Sequence[Sequence[int]],
        groups: Sequence[Sequence[int]],
        device: torch.device | str | None = None,
    ) -> ContentKeys:
        """Keys of rows given as Python integers and lists of them (padded here)."""
        return cls(
            torch.tensor(list(captions), dtype=torch.long, device=device),
            _padded(clip_captions, device),
            _padded(groups, device),
        )

    def __len__(self) -> int:
        return self.caption.shape[0]

    def to(self, device: torch.device | str) -> ContentKeys:
        return ContentKeys(self.caption.to(device), self.clip_captions.to(device), self.groups.to(device))

    def gather(self) -> ContentKeys:
        """The keys of the global batch, rank by rank (widths padded to the widest process's)."""
        return ContentKeys(
            gather_no_grad(self.caption),
            gather_no_grad(_widen(self.clip_captions)),
            gather_no_grad(_widen(self.groups)),
        )


def _padded(rows: Sequence[Sequence[int]], device: torch.device | str | None) -> torch.Tensor:
    width = max((len(row) for row in rows), default=0)
    table = [list(row) + [PAD] * (width - len(row)) for row in rows]
    return torch.tensor(table, dtype=torch.long, device=device).reshape(len(rows), width)


def _widen(table: torch.Tensor) -> torch.Tensor:
    """`table` padded with `PAD` columns to the widest of every process (gathering needs one shape)."""
    width = int(gather_no_grad(torch.tensor([table.shape[1]], device=table.device)).max())
    return F.pad(table, (0, width - table.shape[1]), value=PAD)


@dataclass
class ContentMatches:
    """Which pairs of local rows and global columns are matches (bool `[B, B_all]`).

    `clip_to_caption[i, j]`: local row i's clip and global row j's caption match;
    `caption_to_clip[i, j]`: local row i's caption and global row j's clip match. Each row's own pair
    (global column `rank * B + i`) is always a match.
    """

    clip_to_caption: torch.Tensor
    caption_to_clip: torch.Tensor


def content_matches(local: ContentKeys, everyone: ContentKeys, rank: int) -> ContentMatches:
    """The matches of the `local` rows (this process's) against `everyone` (the global batch, whose rows
    `rank * B .. rank * B + B - 1` are the local ones)."""
    batch, total = len(local), len(everyone)
    if rank < 0 or (rank + 1) * batch > total:
        raise ObjectiveInputError(
            f"rank: local rows {rank} * {batch} .. {(rank + 1) * batch} fall outside the global batch of {total}"
        )
    device = everyone.caption.device
    local = local.to(device)
    # [B, N, G, G'] is small: a few group keys per row, batches of tens to hundreds.
    same = local.groups[:, None, :, None] == everyone.groups[None, :, None, :]
    real = (local.groups != PAD)[:, None, :, None]
    shared_group = (same & real).flatten(2).any(dim=2)
    captions_of_clip = (local.clip_captions[:, None, :] == everyone.caption[None, :, None]).any(dim=2)
    caption_of_clips = (local.caption[:, None, None] == everyone.clip_captions[None, :, :]).any(dim=2)
    own = torch.zeros(batch, total, dtype=torch.bool, device=device)
    own[torch.arange(batch, device=device), torch.arange(batch, device=device) + rank * batch] = True
    return ContentMatches(shared_group | captions_of_clip | own, shared_group | caption_of_clips | own)
