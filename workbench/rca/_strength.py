"""Turning statistics into evidence strengths in [0, 1], by rules that can be stated.

Every check maps its statistic through one of these, so strengths from different
checks are comparable and the ranking's noisy-OR means something.
"""

from __future__ import annotations

import math

__all__ = ["from_share", "from_z", "weaken"]


def from_z(z: float, floor: float = 3.0) -> float:
    """Strength of a robust z-score: 0 up to ``floor`` sigmas, then each further
    ``floor`` sigmas closes 63% of the remaining gap to 1 (``1 - exp(-(z - floor) / floor)``).

    With the default, 3σ → 0, 6σ → 0.63, 9σ → 0.86, 12σ → 0.95.
    """
    if z is None or not math.isfinite(z):
        return 0.0 if z is None or math.isnan(z) else 1.0
    return 1.0 - math.exp(-max(z - floor, 0.0) / floor)


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
