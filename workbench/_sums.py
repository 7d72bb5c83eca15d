"""Mergeable sums behind every sliced or windowed quality number, and metrics with standard errors from them.

A group's quality is fully described by a handful of sums (``SUM_AGGS``):
partitions, hours and slice cells add up, and a complement is a difference.
``metric_table`` turns columns of those sums into a metric and its sampling
standard error (on the log scale for ratios, where changes are relative).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from workbench.case import LABEL, PREDICTION
from workbench.metrics import ne_se, row_log_loss

__all__ = ["LOG_SCALE", "SUMS", "SUM_METRICS", "metric_value", "sum_aggs"]

SUMS = ("rows", "labeled", "positives", "pred_sum", "pred_sq_sum", "pred_sum_labeled", "ll_sum", "ll_sq_sum", "ll_pos_sum")
SUM_METRICS = ("normalized_entropy", "log_loss", "calibration_ratio", "label_rate", "prediction_mean")
LOG_SCALE = frozenset({"calibration_ratio", "prediction_mean", "label_rate"})


def sum_aggs() -> list[pl.Expr]:
    """The aggregations producing ``SUMS`` (labeled rows only for label metrics)."""
    y, p = pl.col(LABEL), pl.col(PREDICTION)
    ll = row_log_loss()
    return [
        pl.len().cast(pl.Int64).alias("rows"),
        y.count().cast(pl.Int64).alias("labeled"),
        y.sum().alias("positives"),
        p.sum().alias("pred_sum"),
        (p * p).sum().alias("pred_sq_sum"),
        pl.when(y.is_not_null()).then(p).otherwise(0.0).sum().alias("pred_sum_labeled"),
        ll.sum().alias("ll_sum"),
        (ll * ll).sum().alias("ll_sq_sum"),
        (ll * y).sum().alias("ll_pos_sum"),
    ]


def metric_value(s: dict[str, np.ndarray], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """``(value, se)`` of ``metric`` per element of the sum arrays in ``s``.

    ``se`` is on the scale comparisons use: log scale for ``LOG_SCALE`` metrics.
    Values are NaN where undefined (no labels, no positives).
    """
    n = np.asarray(s["labeled"], dtype=float)
    rows = np.asarray(s["rows"], dtype=float)
    pos = np.asarray(s["positives"], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(n > 0, pos / n, np.nan)
        match metric:
            case "normalized_entropy":
                h = -(r * np.log(r) + (1 - r) * np.log(1 - r))
                value = s["ll_sum"] / n / h
                se = ne_se(n, pos, s["ll_sum"], s["ll_sq_sum"], s["ll_pos_sum"])
            case "log_loss":
                value = s["ll_sum"] / n
                se = np.sqrt(np.maximum(s["ll_sq_sum"] / n - value**2, 0) / n)
            case "calibration_ratio":
                value = s["pred_sum_labeled"] / pos
                se = np.sqrt((1 - r) / (n * r))  # binomial error of log(sum y)
            case "label_rate":
                value = r
                se = np.sqrt((1 - r) / (n * r))
            case "prediction_mean":
                value = s["pred_sum"] / rows
                se = np.sqrt(np.maximum(s["pred_sq_sum"] / rows - value**2, 0) / rows) / value
            case _:
                raise AssertionError(metric)
        bad = ~np.isfinite(value)
        value = np.where(bad, np.nan, value)
        se = np.where(bad | ~np.isfinite(se), np.nan, se)
    return value, se
