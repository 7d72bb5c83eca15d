"""Train the base CTR model and publish benign fine-tuned snapshots.

Everything runs single-threaded under a forked torch RNG seeded from the case
seed, so the weights (and hence every served prediction) are bit-for-bit
reproducible on one machine, and the caller's torch state is left untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from workbench.sample import _world as world
from workbench.sample.ctr_model import CTRModel

StateDict = dict[str, torch.Tensor]

BASE_ROWS = 80_000  # history rows the base model is trained on
BASE_EPOCHS = 5
BATCH = 1024


@contextlib.contextmanager
def deterministic_torch(seed: int) -> Iterator[None]:
    """One thread and a seeded, forked RNG; restores the caller's settings."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(threads)


def _log_mask() -> torch.Tensor:
    return torch.tensor([1.0 if f.log else 0.0 for f in world.FEATURES])


def history(seed: int, n_rows: int = BASE_ROWS) -> world.Traffic:
    """Labelled traffic from the days before the served window."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    counts = world.rows_per_hour(rng, n_rows, -world.HISTORY_HOURS, world.HISTORY_HOURS)
    traffic = world.simulate(rng, world.timestamps(rng, counts, -world.HISTORY_HOURS))
    traffic.label = world.draw_labels(rng, traffic.true_logit)
    return traffic


def _fit(
    model: CTRModel,
    x: torch.Tensor,
    y: torch.Tensor,
    rng: np.random.Generator,
    *,
    steps: int,
    lr: float,
) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    order = rng.permutation(len(x))
    pos = 0
    for _ in range(steps):
        if pos + BATCH > len(order):
            order, pos = rng.permutation(len(x)), 0
        idx = torch.from_numpy(order[pos : pos + BATCH])
        pos += BATCH
        opt.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
    model.eval()


def train_base(seed: int, data: world.Traffic) -> StateDict:
    """Fit normalisation buffers and weights on the history data."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 4]))
    x = torch.from_numpy(world.feature_matrix(data))
    assert data.label is not None  # the caller drew the labels
    y = torch.from_numpy(data.label.astype(np.float32))
    with deterministic_torch(seed):
        model = CTRModel()
        model.log_mask.copy_(_log_mask())
        with torch.no_grad():
            z = torch.where(model.log_mask.bool(), torch.sign(x) * torch.log1p(x.abs()), x)
            model.mean.copy_(z.mean(0))
            model.std.copy_(z.std(0).clamp_min(1e-3))
        steps = BASE_EPOCHS * (len(x) // BATCH)
        _fit(model, x, y, rng, steps=steps, lr=3e-3)
        return {k: v.detach().clone() for k, v in model.state_dict().items()}


def fine_tune(
    seed: int,
    state: StateDict,
    data: world.Traffic,
    *,
    steps: int = 25,
    lr: float = 5e-4,
    stream: int = 0,
) -> StateDict:
    """Warm-start from ``state`` and take a few Adam steps on ``data``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 5, stream]))
    x = torch.from_numpy(world.feature_matrix(data))
    assert data.label is not None  # the caller drew the labels
    y = torch.from_numpy(data.label.astype(np.float32))
    with deterministic_torch(seed * 1000 + stream):
        model = CTRModel()
        model.load_state_dict(state)
        _fit(model, x, y, rng, steps=steps, lr=lr)
        return {k: v.detach().clone() for k, v in model.state_dict().items()}


def score(state: StateDict, x: np.ndarray) -> np.ndarray:
    """float32 logits of the model with ``state`` on the filled matrix ``x``."""
    with deterministic_torch(0):
        model = CTRModel()
        model.load_state_dict(state)
        model.eval()
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()
