"""What the model-side modules share: one torch thread for small models, the benign-change gate, text and JSON.

The gate is the one statistic the snapshot diff, the activation comparison and
the validator use to say "unlike a routine refresh": a modified z-score
(Iglewicz & Hoaglin 1993) against the same quantity's benign changes in the case,
widened into a prediction interval for one new change, compared with the
Student-t quantile at the tail of a normal z of 3.5 (Bonferroni-split over the
tests judged together).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from workbench.metrics import MAD_TO_SD
from workbench.windows import iso

if TYPE_CHECKING:
    import torch

__all__ = ["COUNT_FLOOR", "LOG_FLOOR", "MAD_TO_SD", "MIN_REFERENCE", "TAIL", "TINY", "Z_GATE", "fmt", "json_value", "records", "robust_z",
           "safe_log", "t_gate", "threads_for"]

Z_GATE = 3.5  # Iglewicz & Hoaglin's cutoff for the modified z-score
TAIL = 2.3262907903552502e-04  # one-sided normal tail beyond Z_GATE: the false-alarm rate per family of tests
LOG_FLOOR = math.log(2.0) / Z_GATE  # a change under 2x the typical one never alarms
COUNT_FLOOR = 1.0 / Z_GATE  # a count must beat the typical one by more than one unit
MIN_REFERENCE = 5  # reference changes needed: below, the t gate exceeds ~20 and says nothing
TINY = 1e-30

SMALL_MODEL = 1_000_000  # parameters: below this a forward pass is too small to gain from intra-op threads


@contextlib.contextmanager
def threads_for(model: torch.nn.Module) -> Iterator[None]:
    """Run a small model's forward passes on one torch thread, restoring the caller's setting after.

    On matrices this small, intra-op parallelism costs more in synchronization than it
    gains, and on a busy machine OpenMP threads spinning for a core made the snapshot
    timeline of the sample cases 10x slower with two threads than with one. Large
    models keep the caller's setting.
    """
    import torch

    if sum(p.numel() for p in model.parameters()) >= SMALL_MODEL:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def json_value(value: object) -> object:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return value


def records(frame: pl.DataFrame | None) -> list[dict] | None:
    """Rows as JSON-safe dicts: NaN/Inf become null, times ISO 8601."""
    if frame is None:
        return None
    return [{k: json_value(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]


def fmt(value: float | None, spec: str = ".3g") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("nan" if math.isnan(value) else "-inf")
    return format(value, spec)


def robust_z(value: float, reference: list[float], floor: float) -> tuple[float, int]:
    """Modified z-score of ``value`` against ``reference``, widened for a new observation, and the reference size.

    ``z = (value - median) / (max(1.4826 MAD, floor) * sqrt(1 + 1/n))``: the
    ``sqrt(1 + 1/n)`` makes it a prediction-interval statistic for one new change.
    """
    ref = np.asarray([r for r in reference if math.isfinite(r)], dtype=np.float64)
    if not math.isfinite(value):
        return (math.inf if value > 0 else -math.inf), ref.size
    if ref.size == 0:
        return math.nan, 0
    med = float(np.median(ref))
    scale = max(MAD_TO_SD * float(np.median(np.abs(ref - med))), floor) * math.sqrt(1 + 1 / ref.size)
    return (value - med) / scale, ref.size


@functools.lru_cache(maxsize=1024)
def t_gate(n: int, tests: int) -> float:
    """The z a change must exceed: Student-t with n-1 degrees of freedom at the tail level
    of a 3.5 normal z, Bonferroni-split over the ``tests`` judged together (one snapshot)."""
    if n < 2:
        return math.inf
    from scipy.special import stdtrit  # the t quantile; scipy.stats would cost 2 s to import

    return float(stdtrit(n - 1, 1.0 - TAIL / max(tests, 1)))


def safe_log(x: float | None) -> float:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return math.nan
    return math.log(max(x, TINY)) if math.isfinite(x) else math.inf


