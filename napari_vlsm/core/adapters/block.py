"""The adapter block of the VLSM-Adapter paper."""

from __future__ import annotations

import torch
from torch import nn


class AdapterBlock(nn.Module):
    """``A(x) = x + relu(W2 · relu(W1 · x + b1) + b2)``: a d → r → d bottleneck with its own skip.

    No norm, no dropout, no scaling, PyTorch's default Linear init — exactly as in the authors'
    code. It acts on the last dimension, so token sequences (B, T, d) and vectors (B, d) alike.
    """

    def __init__(self, dim: int, bottleneck: int):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.up(torch.relu(self.down(x))))

    def reset_parameters(self) -> None:
        self.down.reset_parameters()
        self.up.reset_parameters()

    @torch.no_grad()
    def zero_up(self) -> None:
        """Zero the up-projection: the block becomes the identity (relu(0) = 0)."""
        self.up.weight.zero_()
        self.up.bias.zero_()
