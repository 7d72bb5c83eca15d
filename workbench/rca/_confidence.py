"""The confidence the answer states: the ranking's raw score mapped so that it means what it says.

The ranking's raw confidence (``s * s / sum(s_j)``, :mod:`workbench.rca.ranking`) orders causes
well but is not a probability. A stated confidence ``p`` should mean "a true cause about ``p``
of the time", for the first cause and for the ones after it, so the raw value goes through a
Platt map with one more term, for the cause the ranking puts first:

    confidence = sigmoid(A * logit(raw) + B + FIRST * [ranked first])

Why the rank: at the same raw score a first cause is right far more often than a later one
(dev split, the map before this one: first causes stated 0.6-0.7 were right in 11 of 13,
second causes stated 0.6-0.7 in 5 of 8). The raw share counts the rivals against the winner
as much as against the rest, and the rivals are mostly a strong cause's echoes (a feature
behind the upstream table that broke it, the calibration a broken feature moved).

``A``, ``B`` and ``FIRST`` come from a logistic regression of "this cause names a true cause"
on ``logit(raw)`` and the rank, over every cause listed on the development split's detected
incidents and controls (whose causes are all wrong): ``python benchmarks/fit_confidence.py
RESULTS.json ...``, which prints the three numbers and the reliability per band before and
after. The map is monotone in ``raw`` and a first cause's raw score is the highest, so it
never reorders causes; it is fitted on the development split only, and its reliability is
checked on the held-back split (``benchmarks/results/proving_ground_held.md``).
"""

from __future__ import annotations

import math

__all__ = ["PLATT_A", "PLATT_B", "PLATT_FIRST", "calibrated"]

# Fitted by benchmarks/fit_confidence.py on the dev split: incident seeds 0-8 and 15-17 of every mode and controls 0-132
# (382 listed causes, 287 ranked first, 315 right). A first cause at raw 0.2 states 0.80, at 0.5 0.93; a later cause at
# raw 0.05 states 0.18, at 0.2 0.47, at 0.5 0.75.
PLATT_A = 0.8777
PLATT_B = 1.0937
PLATT_FIRST = 1.5192
_EDGE = 1e-4  # raw values are clipped to [EDGE, 1 - EDGE] before the logit: 0 and 1 are never certain


def calibrated(raw: float, first: bool = False) -> float:
    """The stated confidence for a raw ranking confidence ``raw`` in [0, 1] of a cause ranked first or not."""
    if not math.isfinite(raw):
        return raw
    r = min(max(raw, _EDGE), 1.0 - _EDGE)
    z = PLATT_A * math.log(r / (1.0 - r)) + PLATT_B + (PLATT_FIRST if first else 0.0)
    return 1.0 / (1.0 + math.exp(-z))
