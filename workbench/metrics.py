"""Prediction-quality statistics: polars expressions for the grouped passes, numpy for small tables.

Definitions (every view and verdict uses these, nothing else):

- **clip**: probabilities enter every log at ``[CLIP, 1 - CLIP]`` with ``CLIP = 1e-7``.
  Served scores are usually float32, whose resolution next to 1 is 6e-8: a
  logged 1.0 stands for any probability above 1 - 6e-8, so nothing finer can be
  read from it, and a clip at 1e-7 treats 0 and 1 symmetrically. It also bounds
  one row's loss at ln(1e7) = 16 nats, so a log of scores rounded to two
  decimals (exact 0s and 1s) is not ruled by a few rows.
- **logit**: ``ln(p / (1 - p))`` of the clipped ``p``.
- **log loss**: mean over *labeled* rows of ``-[y ln p + (1-y) ln(1-p)]`` (clipped ``p``).
- **entropy of the base rate**: ``H(r) = -[r ln r + (1-r) ln(1-r)]`` (nats), the
  log loss of always predicting the label rate ``r`` of the same rows.
- **normalized entropy** (He et al., *Practical lessons from predicting clicks on
  ads at Facebook*, ADKDD 2014): ``NE = log loss / H(r)``. 1.0 means no better than
  predicting the base rate; lower is better. Null when ``r`` is 0 or 1.
- **calibration ratio**: ``sum(p) / sum(y)`` over labeled rows; 1 is calibrated on
  average, above 1 over-predicts. Compared on the log scale (relative changes).
- **label delay**: trailing hours whose label join rate is below ``RELIABLE_JOIN`` (90%)
  of the typical (median) join rate are still waiting for labels (:func:`reliable_end`).
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

This module is the one definition of each: the data passes (:mod:`workbench.data`), the
headline and the detector, the validator, the re-scorer and feature isolation
(:mod:`workbench.model`) all call it. Metrics from mergeable sums
(:func:`metric_from_sums`) serve every windowed and sliced figure.

>>> import numpy as np
>>> p, y = np.array([0.1, 0.4, 0.35, 0.8]), np.array([0.0, 0.0, 1.0, 1.0])
>>> auc(p, y), round(normalized_entropy(p, y), 3)
(0.75, 0.681)
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from workbench.case.columns import LABEL, PREDICTION

__all__ = [
    "CLIP",
    "ECE_BINS",
    "MAD_TO_SD",
    "RELIABLE_JOIN",
    "SCORE_BINS",
    "SCORE_BINS_PER_LOGIT",
    "auc",
    "auc_from_bins",
    "auc_se",
    "base_rate_entropy",
    "calibration_log_se",
    "calibration_ratio",
    "clip_probability",
    "clipped_expr",
    "comparison_scale",
    "counted_classes",
    "counted_positives",
    "ece",
    "ece_bin",
    "entropy",
    "entropy_expr",
    "fit_offset",
    "labelled_prediction_sum_expr",
    "log_loss",
    "logit",
    "metric_from_sums",
    "ne_se",
    "norm_sf",
    "normalized_entropy",
    "reliable_end",
    "row_log_loss",
    "row_log_loss_expr",
    "row_log_loss_logit",
    "score_bin",
    "sigmoid",
    "two_proportion_se",
]

CLIP = 1e-7
SCORE_BINS_PER_LOGIT = 100
LOGIT_LIMIT = 15.0  # the score-bin range; clipped logits (|logit| <= 16.1) beyond it share the end bins
SCORE_BINS = int(2 * LOGIT_LIMIT * SCORE_BINS_PER_LOGIT)
ECE_BINS = 10
LOGIT_CLIP = math.log((1 - CLIP) / CLIP)  # 16.1: the logit of the clip
MAD_TO_SD = 1.4826  # a normal's standard deviation per median absolute deviation (1 / the normal's 0.75 quantile)
RELIABLE_JOIN = 0.9  # share of the typical join rate below which a trailing hour is still waiting for labels
LOG_SCALE = frozenset({"calibration_ratio", "prediction_mean", "label_rate"})  # compared as relative changes


def comparison_scale(metric: str, value):
    """``value`` of ``metric`` on the scale changes are compared on: the log for ``LOG_SCALE`` ratios (NaN where not
    positive), else as it is. Scalars or arrays."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(value) if metric in LOG_SCALE else value


# ---------------------------------------------------------------- polars expressions
def clipped_expr(prediction: str = PREDICTION) -> pl.Expr:
    """The prediction column clipped to ``[CLIP, 1 - CLIP]``."""
    return pl.col(prediction).clip(CLIP, 1.0 - CLIP)


def row_log_loss_expr(prediction: str = PREDICTION, label: str = LABEL) -> pl.Expr:
    """Per-row log loss; null where the label is null (so sums and means skip those rows)."""
    p, y = clipped_expr(prediction), pl.col(label)
    return -(y * p.log() + (1.0 - y) * (1.0 - p).log())


def labelled_prediction_sum_expr(prediction: str = PREDICTION, label: str = LABEL) -> pl.Expr:
    """``pred_sum_labeled``: the predictions of the labelled rows, summed: the positives the model expects where a label
    says what happened (a calibration ratio's numerator; the 15-minute profile and every sliced sum use this one)."""
    return pl.when(pl.col(label).is_not_null()).then(pl.col(prediction)).otherwise(0.0).sum().alias("pred_sum_labeled")


def score_bin(prediction: str = PREDICTION) -> pl.Expr:
    """The AUC score bin: ``floor((logit(p) + 15) * 100)`` clipped to ``[0, SCORE_BINS)``, as Int16."""
    p = clipped_expr(prediction)
    logit_ = (p / (1.0 - p)).log()
    return ((logit_ + LOGIT_LIMIT) * SCORE_BINS_PER_LOGIT).floor().clip(0, SCORE_BINS - 1).cast(pl.Int16)


def ece_bin(prediction: str = PREDICTION, bins: int = ECE_BINS) -> pl.Expr:
    """The equal-width calibration bin ``floor(p * bins)``, with ``p = 1`` in the last bin, as Int8."""
    return (pl.col(prediction) * bins).floor().clip(0, bins - 1).cast(pl.Int8)


def entropy_expr(rate: pl.Expr) -> pl.Expr:
    """``H(r)`` in nats for a column of rates; null outside ``(0, 1)``."""
    return pl.when((rate > 0) & (rate < 1)).then(-(rate * rate.log() + (1 - rate) * (1 - rate).log()))


# ---------------------------------------------------------------- numpy (small arrays, samples, references)
def _labeled(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=float)
    keep = ~np.isnan(y)
    return p[keep], y[keep]


def clip_probability(p: np.ndarray) -> np.ndarray:
    """``p`` clipped to ``[CLIP, 1 - CLIP]`` (see the module docstring for why 1e-7)."""
    return np.clip(np.asarray(p, dtype=float), CLIP, 1.0 - CLIP)


def logit(p: np.ndarray) -> np.ndarray:
    """``ln(p / (1 - p))`` of the clipped probability."""
    q = clip_probability(p)
    return np.log(q / (1.0 - q))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The probability of a logit, ``1 / (1 + e^-z)`` (no overflow warnings for large ``|z|``)."""
    z = np.asarray(z, dtype=float)
    return np.exp(-np.logaddexp(0.0, -z))


MAX_OFFSET_STEP = 4.0
"""The largest move of one :func:`fit_offset` Newton step, in logits."""


def fit_offset(z: np.ndarray, y: np.ndarray, steps: int = 30) -> float:
    """Maximum-likelihood ``b`` of ``sigmoid(z + b)``: the shift that calibrates logits ``z`` in the large on labels
    ``y`` (Newton's method on one parameter).

    Each step is held to ``MAX_OFFSET_STEP`` logits: the likelihood is concave, but where the logits sit far from
    the labels (a snapshot trained on sub-sampled negatives predicts near 1 for rows that click 2 % of the time)
    its curvature is nearly zero, and a full Newton step overshoots by orders of magnitude and then diverges.
    Held steps walk there and Newton's convergence takes over. With no positive (or no negative) label the
    maximum is at infinity; the result is then a large finite shift, never NaN."""
    b = 0.0
    for _ in range(steps):  # iterations of a 1-parameter Newton solve, not a loop over rows
        p = sigmoid(z + b)
        h = float((p * (1 - p)).sum())
        step = float(np.clip(float((y - p).sum()) / max(h, 1e-12), -MAX_OFFSET_STEP, MAX_OFFSET_STEP))
        b += step
        if abs(step) < 1e-10:
            break
    return b


def row_log_loss_logit(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """:func:`row_log_loss` of ``sigmoid(z)`` computed on the logit scale, ``softplus(z) - y z``,
    with ``z`` clipped to ``±logit(1 - CLIP)`` so it equals the clipped probability's loss."""
    z = np.clip(np.asarray(z, dtype=float), -LOGIT_CLIP, LOGIT_CLIP)
    return np.logaddexp(0.0, z) - np.asarray(y, dtype=float) * z


def row_log_loss(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-row log loss ``-[y ln p + (1-y) ln(1-p)]`` (clipped ``p``); NaN where ``y`` is NaN."""
    q = clip_probability(p)
    y = np.asarray(y, dtype=float)
    return -(y * np.log(q) + (1.0 - y) * np.log(1.0 - q))


def entropy(rate: np.ndarray | float) -> np.ndarray:
    """``H(r) = -[r ln r + (1-r) ln(1-r)]`` in nats, vectorized; NaN where ``r`` is not in ``(0, 1)``."""
    r = np.asarray(rate, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(r * np.log(r) + (1.0 - r) * np.log(1.0 - r))
    return np.where((r > 0) & (r < 1), h, np.nan)


def base_rate_entropy(rate: float) -> float:
    """``H(r)`` of one rate; NaN when ``r`` is 0, 1 or NaN."""
    if not 0.0 < rate < 1.0:
        return math.nan
    return -(rate * math.log(rate) + (1 - rate) * math.log(1 - rate))


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    """Mean log loss over labeled rows (NaN labels are skipped)."""
    p, y = _labeled(p, y)
    return float(np.mean(row_log_loss(p, y))) if len(y) else math.nan


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
        h = entropy(r)
        dh = np.log((1 - r) / r)
        g1, g2 = 1.0 / h, -mean_l * dh / h**2
        var = (g1**2 * var_l + g2**2 * var_y + 2 * g1 * g2 * cov) / n
        return np.sqrt(np.maximum(var, 0.0))


def counted_positives(positives: np.ndarray, pred_sum_labeled: np.ndarray) -> np.ndarray:
    """The positives a period or a slice counts for its support and its error: observed or, when more, expected by the
    model (``sum p``). Under no change the two agree; under a change the smaller is the symptom, not the evidence
    (clicks that collapsed, or predictions that did)."""
    return np.fmax(np.asarray(positives, dtype=float), np.asarray(pred_sum_labeled, dtype=float))


def counted_classes(positives: np.ndarray, pred_sum_labeled: np.ndarray, labeled: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """A period's (or a window's) positives and negatives as it counts them for its support, each the observed or,
    when more, the expected count (:func:`counted_positives`; the negatives expected are ``labeled - sum p``)."""
    positives, expected, labeled = (np.asarray(a, dtype=float) for a in (positives, pred_sum_labeled, labeled))
    return counted_positives(positives, expected), counted_positives(labeled - positives, labeled - expected)


def calibration_log_se(labeled: np.ndarray, pred_sum_labeled: np.ndarray, positives: np.ndarray | None = None
                       ) -> np.ndarray:
    """The sampling error of ``log(sum y)``, hence of the log calibration ratio: binomial at the larger of the rate
    the model expects (``pred_sum_labeled / labeled``) and the observed one (``positives / labeled``, when given).

    Under no change the two agree. Under a change, the smaller of them is the symptom, not the evidence: an
    incident that removes the clicks must not inflate the error of the rows that show it (one click left of
    twenty expected reads as a collapse at ``1/sqrt(20)``, not as noise at ``1/sqrt(1)``), nor may predictions
    that collapsed to nothing (a feature x1000) remove the weight of the periods whose clicks still arrive."""
    n = np.asarray(labeled, dtype=float)
    count = np.asarray(pred_sum_labeled, dtype=float) if positives is None else counted_positives(positives, pred_sum_labeled)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = count / n
        return np.sqrt((1 - rate) / (n * rate))


def metric_from_sums(s: dict[str, np.ndarray], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(value, se)`` of ``metric`` per element of mergeable sum arrays ``s``
    (``rows``, ``labeled``, ``positives``, ``pred_sum``, ``pred_sq_sum``, ``pred_sum_labeled``,
    ``ll_sum``, ``ll_sq_sum``, ``ll_pos_sum``: see :mod:`workbench.data._sums`).

    One definition for every windowed, pooled and sliced figure: the headline, the
    detector's series and the slice search read the same sums through it. ``se`` is
    the sampling standard error on the scale comparisons use (log scale for
    ``LOG_SCALE`` metrics). Values are NaN where undefined (no labels, no positives).
    """
    n = np.asarray(s["labeled"], dtype=float)
    rows = np.asarray(s["rows"], dtype=float)
    pos = np.asarray(s["positives"], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(n > 0, pos / n, np.nan)
        match metric:
            case "normalized_entropy":
                value = np.asarray(s["ll_sum"], dtype=float) / n / entropy(r)
                se = ne_se(n, pos, s["ll_sum"], s["ll_sq_sum"], s["ll_pos_sum"])
            case "log_loss":
                value = np.asarray(s["ll_sum"], dtype=float) / n
                se = np.sqrt(np.maximum(np.asarray(s["ll_sq_sum"]) / n - value**2, 0) / n)
            case "calibration_ratio":
                value = np.asarray(s["pred_sum_labeled"], dtype=float) / pos
                se = calibration_log_se(n, s["pred_sum_labeled"], pos)
            case "label_rate":
                value = r
                se = np.sqrt((1 - r) / (n * r))
            case "prediction_mean":
                value = np.asarray(s["pred_sum"], dtype=float) / rows
                se = np.sqrt(np.maximum(np.asarray(s["pred_sq_sum"]) / rows - value**2, 0) / rows) / value
            case "label_join_rate":
                value, se = n / rows, np.full_like(n, np.nan)
            case _:
                raise ValueError(f"metric_from_sums: unknown metric {metric!r}")
        bad = ~np.isfinite(value)
        value = np.where(bad, np.nan, value)
        se = np.where(bad | ~np.isfinite(se), np.nan, se)
    return value, se


def reliable_end(join_rates: np.ndarray, rows: np.ndarray | None = None) -> int:
    """Index one past the last reliably labeled period: trailing periods still waiting for labels are cut.

    A trailing period is waiting when its label join rate is below ``RELIABLE_JOIN`` of the
    typical (median) rate, or, given its ``rows``, below the typical rate by more than three
    binomial standard errors: a period 95% joined is not measured yet either, and as late
    labels are often the clicks, its label rate (and every label metric) is biased.

    The one definition of label delay: the case warning, the grain, the onset windows,
    the label delay profile and the label-free estimate all use it.
    """
    join = np.nan_to_num(np.asarray(join_rates, dtype=np.float64), nan=0.0)
    if not len(join):
        return 0
    typical = float(np.median(join))
    floor = np.full(len(join), RELIABLE_JOIN * typical)
    if rows is not None:
        n = np.maximum(np.asarray(rows, dtype=np.float64), 1.0)
        # a binomial standard error, never below that of one row in n (a period missing a single label is not waiting)
        floor = np.maximum(floor, typical - 3.0 * np.sqrt(np.maximum(typical * (1.0 - typical), 1.0 / n) / n))
    end = len(join)
    while end > 0 and join[end - 1] < floor[end - 1]:
        end -= 1
    return end


def two_proportion_se(pooled: float, n_a: float, n_b: float) -> float:
    """The standard error of a difference of two proportions under their pooled proportion (the two-proportion z
    test's), ``sqrt(p (1 - p) (1 / n_a + 1 / n_b))``, each count at least 1; 0 when ``pooled`` is 0 or 1."""
    return math.sqrt(pooled * (1 - pooled) * (1 / max(n_a, 1) + 1 / max(n_b, 1)))


def norm_sf(z: float) -> float:
    """Upper tail of the standard normal, ``P(Z > z)``."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))
