"""Small feed-forward building blocks used by unfolded DBNs."""

from __future__ import annotations

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
        u = torch.rand(x.shape, generator=self.generator, dtype=x.dtype, device=x.device)
        return x * (u < keep).to(x.dtype) / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"
