"""The CTR model architecture of the sample cases.

This file is copied verbatim into every generated case as ``model.py``, so it
must stay self-contained: it imports nothing but torch, and the case's
``workbench.toml`` points at ``model.py:build``.

The model takes the raw-scale dense features (nulls filled with 0.0), applies
a signed ``log1p`` to the heavy-tailed columns and standardises every column
with the training mean and standard deviation. Those transforms are buffers,
so each snapshot carries its own normalisation and raw features work as is.
"""

from __future__ import annotations

import torch
from torch import nn

N_FEATURES = 24


class CTRModel(nn.Module):
    """A small MLP, 24 -> 32 -> 16 -> 1, returning click logits of shape [n]."""

    # the buffers registered below (typed here: nn.Module's attribute lookup says Tensor | Module)
    log_mask: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, n_features: int = N_FEATURES) -> None:
        super().__init__()
        # 1.0 where the column is log-transformed before standardisation.
        self.register_buffer("log_mask", torch.zeros(n_features))
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.net = nn.Sequential(
            nn.Linear(n_features, 32),
            nn.ReLU(),
            nn.Linear(32, 16),
            nn.ReLU(),
            nn.Linear(16, 1),
        )

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Raw features -> standardised network inputs."""
        logged = torch.sign(x) * torch.log1p(x.abs())
        x = self.log_mask * logged + (1.0 - self.log_mask) * x
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.transform(x)).squeeze(-1)


def build() -> CTRModel:
    """Factory named by ``workbench.toml``: ``[model] factory = "model.py:build"``."""
    return CTRModel()
