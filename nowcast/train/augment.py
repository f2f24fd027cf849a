"""``train.augment``: random flips and quarter turns of training windows.

A radar window seen mirrored or turned by 90° is another plausible window (rain moving
another way), so the 8 symmetries of the square (the dihedral group D4) multiply scarce
training data. Each window of a batch gets one symmetry, the same for its inputs, targets
and loss mask. On a non-square grid only the 4 that keep its shape are drawn (identity,
half turn, and the two mirrors).

Code ``c`` in 0…7: mirror left–right if ``c ≥ 4``, then turn ``c mod 4`` quarter turns
counter-clockwise (``torch.rot90`` on the last two dims).
"""

from __future__ import annotations

import torch
from torch import Tensor

#: codes of the symmetries that keep an H ≠ W grid's shape
SHAPE_KEEPING = (0, 2, 4, 6)


def dihedral(x: Tensor, code: int) -> Tensor:
    """Symmetry ``code`` (0…7, module doc) of ``x`` (…, H, W) on its last two dims."""
    if code >= 4:
        x = x.flip(-1)
    return torch.rot90(x, code % 4, dims=(-2, -1))


def draw_codes(batch: int, square: bool, generator: torch.Generator) -> Tensor:
    """(batch,) int64 symmetry codes, uniform over the 8 (square) or the 4 shape-keeping."""
    if square:
        return torch.randint(0, 8, (batch,), generator=generator)
    pick = torch.randint(0, len(SHAPE_KEEPING), (batch,), generator=generator)
    return torch.tensor(SHAPE_KEEPING)[pick]


def augment_batch(codes: Tensor, *tensors: Tensor) -> tuple[Tensor, ...]:
    """Apply ``codes[b]`` to sample b of each tensor (B, …, H, W) (inputs, targets, mask)."""
    out = []
    for t in tensors:
        out.append(torch.stack([dihedral(t[b], int(c)) for b, c in enumerate(codes)]))
    return tuple(out)
