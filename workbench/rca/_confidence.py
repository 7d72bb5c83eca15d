"""The confidence the answer states: the ranking's raw score mapped so that it means what it says.

The ranking's raw confidence (``s * s / sum(s_j)``, :mod:`workbench.rca.ranking`) orders causes
well but is not a probability: on the proving ground's development split the top cause was
right in every case whose raw confidence lay between 0.4 and 0.9. A stated confidence ``p``
should mean "right about ``p`` of the time", so the raw value goes through a Platt map
fitted there:

    confidence = sigmoid(A * logit(raw) + B)

``A`` and ``B`` come from a logistic regression of "the top cause was the true one" on
``logit(raw)`` over the development split's detected incidents
(``python benchmarks/fit_confidence.py RESULTS.json``, which prints the two numbers and the
reliability per band before and after). The map is monotone, so it never reorders causes;
it is fitted on the development split only, and its reliability is checked on the held-back
split (``benchmarks/results/proving_ground_held.md``).
"""

from __future__ import annotations

import math

__all__ = ["PLATT_A", "PLATT_B", "calibrated"]

# Fitted by benchmarks/fit_confidence.py on the dev split, 3 seeds per mode (benchmarks/results/proving_ground_dev.json):
# 68 detected incidents with a top cause, 62 right. Raw 0.5 states 0.80; raw 0.2 states 0.50; raw 0.9 states 0.97.
PLATT_A = 0.9860
PLATT_B = 1.3985
_EDGE = 1e-4  # raw values are clipped to [EDGE, 1 - EDGE] before the logit: 0 and 1 are never certain


def calibrated(raw: float) -> float:
    """The stated confidence for a raw ranking confidence ``raw`` in [0, 1]."""
    if not math.isfinite(raw):
        return raw
    r = min(max(raw, _EDGE), 1.0 - _EDGE)
    z = PLATT_A * math.log(r / (1.0 - r)) + PLATT_B
    return 1.0 / (1.0 + math.exp(-z))
