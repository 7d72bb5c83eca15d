"""Mergeable sums behind every sliced or windowed quality number.

A group's quality is fully described by a handful of sums (``SUMS``): partitions,
hours and slice cells add up, and a complement is a difference.
:func:`workbench.metrics.metric_from_sums` turns them into a metric and its
sampling standard error.
"""

from __future__ import annotations

import polars as pl

from workbench.case.columns import LABEL, PREDICTION
from workbench.metrics import labelled_prediction_sum_expr, row_log_loss_expr

__all__ = ["SUMS", "SUM_METRICS", "sum_aggs"]

SUMS = ("rows", "labeled", "positives", "pred_sum", "pred_sq_sum", "pred_sum_labeled", "ll_sum", "ll_sq_sum", "ll_pos_sum")
SUM_METRICS = ("normalized_entropy", "log_loss", "calibration_ratio", "label_rate", "prediction_mean")


def sum_aggs() -> list[pl.Expr]:
    """The aggregations producing ``SUMS`` (labeled rows only for label metrics)."""
    y, p = pl.col(LABEL), pl.col(PREDICTION)
    ll = row_log_loss_expr()
    return [
        pl.len().cast(pl.Int64).alias("rows"),
        y.count().cast(pl.Int64).alias("labeled"),
        y.sum().alias("positives"),
        p.sum().alias("pred_sum"),
        (p * p).sum().alias("pred_sq_sum"),
        labelled_prediction_sum_expr(),
        ll.sum().alias("ll_sum"),
        (ll * ll).sum().alias("ll_sq_sum"),
        (ll * y).sum().alias("ll_pos_sum"),
    ]
