"""Small feed-forward building blocks used by unfolded DBNs."""

from __future__ import annotations

import math

import torch
from torch import nn


class Dropout(nn.Module):
    """Inverted dropout that draws its masks from a ``torch.Generator``.

    ``torch.nn.Dropout`` uses the global RNG; this one takes its randomness from
    ``self.generator`` (set it before training), so a seeded run is reproducible without global
    seeding. Identity in eval mode or when ``p == 0``.
    """

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must lie in [0, 1), got {p}")
        self.p = float(p)
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        return x * keep_mask(x.shape, keep, self.generator, x.device).to(x.dtype) / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def keep_mask(
    shape: torch.Size, keep: float, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """A boolean mask of ``shape`` whose entries are True with probability ``keep``.

    Each 64-bit draw of the generator gives four 16-bit uniforms, a quarter of the draws that
    ``torch.rand`` needs (on CPU the draws, not the arithmetic, bound dropout's cost). ``keep``
    is resolved to 1/65536.
    """
    n = math.prod(shape)
    bits = torch.randint(
        -(2**63), 2**63 - 1, ((n + 3) // 4,), generator=generator, dtype=torch.int64, device=device
    )
    uniform16 = bits.view(torch.int16)[:n].view(shape)  # uniform on [-32768, 32767]
    return uniform16 < round(keep * 65536) - 32768
