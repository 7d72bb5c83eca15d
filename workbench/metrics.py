"""Prediction-quality statistics: polars expressions for the grouped passes, numpy for small tables.

Definitions (every view and verdict uses these, nothing else):

- **log loss**: mean over *labeled* rows of ``-[y ln p + (1-y) ln(1-p)]``, with
  ``p`` clipped to ``[1e-15, 1 - 1e-15]``.
- **entropy of the base rate**: ``H(r) = -[r ln r + (1-r) ln(1-r)]`` (nats), the
  log loss of always predicting the label rate ``r`` of the same rows.
- **normalized entropy** (He et al., *Practical lessons from predicting clicks on
  ads at Facebook*, ADKDD 2014): ``NE = log loss / H(r)``. 1.0 means no better than
  predicting the base rate; lower is better. Null when ``r`` is 0 or 1.
- **calibration ratio**: ``sum(p) / sum(y)`` over labeled rows; 1 is calibrated on
  average, above 1 over-predicts.
- **ECE** (expected calibration error): ``sum_b (n_b / n) |mean p_b - mean y_b|`` over
  ``ECE_BINS`` equal-width prediction bins ``[k/B, (k+1)/B)`` (the last one closed),
  labeled rows only.
- **AUC**: the Mann-Whitney probability that a positive outranks a negative, ties
  counting one half. :func:`auc` is exact (average ranks). In grouped passes the
  score is first cut into *score bins* of width ``1 / SCORE_BINS_PER_LOGIT`` on the
  logit scale (0.01; logits clipped to ±15, 3000 bins): pairs in different bins
  are ordered exactly and pairs within one bin count as ties, so
  ``|AUC_binned - AUC_exact| <= 1/2 * sum_b P_b N_b / (P N)`` (:func:`auc_from_bins`
  returns that bound with the value). The bins are mergeable counts: partitions,
  hours and slices add up.

Only the dependency-free pieces live here; the passes that use them are in
:mod:`workbench.quality`, :mod:`workbench.slices` and :mod:`workbench.drift`, and the
distribution distances in :mod:`workbench._distances`.

>>> import numpy as np
>>> p, y = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0.0, 0.0, 1.0, 1.0])
>>> auc(p, y), round(normalized_entropy(p, y), 3)
(0.75, 0.681)
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from workbench.case import LABEL, PREDICTION

__all__ = [
    "ECE_BINS",
    "EPS",
    "SCORE_BINS",
    "SCORE_BINS_PER_LOGIT",
    "auc",
    "auc_from_bins",
    "auc_se",
    "base_rate_entropy",
    "calibration_ratio",
    "ece",
    "ece_bin",
    "entropy_expr",
    "log_loss",
    "ne_se",
    "normalized_entropy",
    "row_log_loss",
    "score_bin",
]

EPS = 1e-15
SCORE_BINS_PER_LOGIT = 100
LOGIT_LIMIT = 15.0
SCORE_BINS = int(2 * LOGIT_LIMIT * SCORE_BINS_PER_LOGIT)
ECE_BINS = 10


# ---------------------------------------------------------------- polars expressions
def _p(prediction: str) -> pl.Expr:
    return pl.col(prediction).clip(EPS, 1.0 - EPS)


def row_log_loss(prediction: str = PREDICTION, label: str = LABEL) -> pl.Expr:
    """Per-row log loss; null where the label is null (so sums and means skip those rows)."""
    p, y = _p(prediction), pl.col(label)
    return -(y * p.log() + (1.0 - y) * (1.0 - p).log())


def score_bin(prediction: str = PREDICTION) -> pl.Expr:
    """The AUC score bin: ``floor((logit(p) + 15) * 100)`` clipped to ``[0, SCORE_BINS)``, as Int16."""
    p = _p(prediction)
    logit = (p / (1.0 - p)).log()
    return ((logit + LOGIT_LIMIT) * SCORE_BINS_PER_LOGIT).floor().clip(0, SCORE_BINS - 1).cast(pl.Int16)


def ece_bin(prediction: str = PREDICTION, bins: int = ECE_BINS) -> pl.Expr:
    """The equal-width calibration bin ``floor(p * bins)``, with ``p = 1`` in the last bin, as Int8."""
    return (pl.col(prediction) * bins).floor().clip(0, bins - 1).cast(pl.Int8)


def entropy_expr(rate: pl.Expr) -> pl.Expr:
    """``H(r)`` in nats for a column of rates; null outside ``(0, 1)``."""
    return pl.when((rate > 0) & (rate < 1)).then(-(rate * rate.log() + (1 - rate) * (1 - rate).log()))


# ---------------------------------------------------------------- numpy (small arrays, tests, references)
def _labeled(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=float)
    keep = ~np.isnan(y)
    return p[keep], y[keep]


def base_rate_entropy(rate: float) -> float:
    """``H(r) = -[r ln r + (1-r) ln(1-r)]`` in nats; NaN when ``r`` is 0, 1 or NaN."""
    if not 0.0 < rate < 1.0:
        return math.nan
    return -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    """Mean log loss over labeled rows (NaN labels are skipped)."""
    p, y = _labeled(p, y)
    if not len(y):
        return math.nan
    q = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def normalized_entropy(p: np.ndarray, y: np.ndarray) -> float:
    """Log loss divided by the entropy of the same rows' label rate."""
    p, y = _labeled(p, y)
    return log_loss(p, y) / base_rate_entropy(float(y.mean())) if len(y) else math.nan


def calibration_ratio(p: np.ndarray, y: np.ndarray) -> float:
    """``sum(p) / sum(y)`` over labeled rows; NaN without positives."""
    p, y = _labeled(p, y)
    return float(p.sum() / y.sum()) if y.sum() > 0 else math.nan


def ece(p: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error over ``bins`` equal-width prediction bins, labeled rows."""
    p, y = _labeled(p, y)
    if not len(y):
        return math.nan
    b = np.clip(np.floor(p * bins), 0, bins - 1).astype(int)
    gap = np.bincount(b, weights=p, minlength=bins) - np.bincount(b, weights=y, minlength=bins)
    return float(np.abs(gap).sum() / len(y))


def auc(p: np.ndarray, y: np.ndarray) -> float:
    """Exact AUC (Mann-Whitney U with average ranks for ties) over labeled rows."""
    p, y = _labeled(p, y)
    n_pos = float(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(p, kind="mergesort")
    sp = p[order]
    ranks = np.empty(len(p))
    # average rank per run of ties
    starts = np.flatnonzero(np.r_[True, sp[1:] != sp[:-1]])
    ends = np.r_[starts[1:], len(sp)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_from_bins(positives: np.ndarray, negatives: np.ndarray) -> tuple[float, float]:
    """AUC and its tie bound from per-bin counts ordered by ascending score.

    Returns ``(auc, bound)`` with ``bound = 1/2 * sum_b P_b N_b / (P N)``, the most the
    binned value can differ from the exact AUC of the rows behind the bins.
    """
    pos, neg = np.asarray(positives, dtype=float), np.asarray(negatives, dtype=float)
    total_p, total_n = pos.sum(), neg.sum()
    if total_p == 0 or total_n == 0:
        return math.nan, math.nan
    below = np.cumsum(neg) - neg
    pairs = total_p * total_n
    return float((pos * (below + 0.5 * neg)).sum() / pairs), float(0.5 * (pos * neg).sum() / pairs)


def auc_se(value: float, positives: float, negatives: float) -> float:
    """Standard error of an AUC (Hanley & McNeil, Radiology 1982)."""
    a, n1, n2 = value, positives, negatives
    if not (n1 > 0 and n2 > 0) or math.isnan(a):
        return math.nan
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a)) / (n1 * n2)
    return math.sqrt(max(var, 0.0))


def ne_se(labeled: np.ndarray, positives: np.ndarray, ll_sum: np.ndarray, ll_sq_sum: np.ndarray,
          ll_pos_sum: np.ndarray) -> np.ndarray:
    """Delta-method standard error of NE from mergeable sums (vectorized over groups).

    ``NE = L / H(r)`` with ``L`` the mean row loss and ``r`` the label rate; the
    gradient ``(1/H, -L H'(r) / H^2)`` with ``H'(r) = ln((1-r)/r)`` meets the sample
    covariance of (row loss, label) estimated from ``sum ll``, ``sum ll^2`` and
    ``sum ll*y``.
    """
    n = np.asarray(labeled, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = positives / n
        mean_l = ll_sum / n
        var_l = np.maximum(ll_sq_sum / n - mean_l**2, 0.0)
        var_y = r * (1 - r)
        cov = ll_pos_sum / n - mean_l * r
        h = -(r * np.log(r) + (1 - r) * np.log(1 - r))
        dh = np.log((1 - r) / r)
        g1, g2 = 1.0 / h, -mean_l * dh / h**2
        var = (g1**2 * var_l + g2**2 * var_y + 2 * g1 * g2 * cov) / n
        return np.sqrt(np.maximum(var, 0.0))
