"""Turning statistics into evidence strengths in [0, 1], by rules that can be stated.

Every check maps its statistic through one of these, so strengths from different
checks are comparable and the ranking's noisy-OR means something.
"""

from __future__ import annotations

import math

__all__ = ["from_excess", "from_gate", "from_js", "from_share", "from_z", "weaken"]


def from_excess(value: float | None, floor: float, scale: float) -> float:
    """0 up to ``floor``; beyond it each further ``scale`` closes 63% of the gap to 1:
    ``1 - exp(-(value - floor) / scale)``. NaN/None give 0, +inf gives 1."""
    if value is None or math.isnan(value):
        return 0.0
    if math.isinf(value):
        return 1.0 if value > 0 else 0.0
    return 1.0 - math.exp(-max(value - floor, 0.0) / scale)


def from_z(z: float | None, floor: float = 3.0) -> float:
    """A robust z-score: 0 up to 3σ, then 6σ → 0.63, 9σ → 0.86, 12σ → 0.95."""
    return from_excess(z, floor, floor)


def from_js(js: float | None) -> float:
    """A Jensen-Shannon distance in excess of organic drift (the drift ranking's severity).

    JS ≈ 0.42 × a mean shift in standard deviations, and 0.1 is the small-effect
    floor of :mod:`workbench.data.drift`; each further 0.15 (≈ 0.36 SD) closes 63% of the
    gap: 0.2 → 0.49, 0.3 → 0.74, 0.5 → 0.93.
    """
    return from_excess(js, 0.1, 0.15)


def from_gate(z: float | None, gate: float) -> float:
    """A statistic relative to its own critical value: half the gate → 0, the gate → 0.63, twice → 0.95."""
    if z is None or gate is None or not gate > 0:
        return 0.0
    return from_excess(z / gate, 0.5, 0.5)


def from_share(share: float) -> float:
    """A share in [0, 1] (of rows, of a regression explained) used as a strength, clipped."""
    if share is None or not math.isfinite(share):
        return 0.0
    return min(max(share, 0.0), 1.0)


def weaken(strength: float, *others: float) -> float:
    """``strength`` scaled by how much the other explanations leave unexplained."""
    for other in others:
        strength *= 1.0 - min(max(other, 0.0), 1.0)
    return strength
