"""Mergeable sums behind every sliced or windowed quality number.

A group's quality is fully described by a handful of sums (``SUMS``): partitions,
hours and slice cells add up, and a complement is a difference.
:func:`workbench.metrics.metric_from_sums` turns them into a metric and its
sampling standard error.
"""

from __future__ import annotations

import polars as pl

from workbench.case.columns import LABEL, PREDICTION
from workbench.case.loader import Case
from workbench.data._frames import PERIOD, collect_sums
from workbench.metrics import labelled_prediction_sum_expr, row_log_loss_expr
from workbench.windows import Window

__all__ = ["MIN_LABELED", "SUMS", "SUM_METRICS", "sum_aggs", "window_cells"]

SUMS = ("rows", "labeled", "positives", "pred_sum", "pred_sq_sum", "pred_sum_labeled", "ll_sum", "ll_sq_sum", "ll_pos_sum")
MIN_LABELED = 50  # labelled rows a segment needs in each window to be compared (the slice search's support; the mix's)
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


def window_cells(case: Case, baseline: Window, incident: Window, columns: tuple[str, ...], *,
                 scheduler: object = None) -> pl.DataFrame:
    """``SUMS`` per window (``PERIOD``: ``baseline``/``incident``) and cross-product cell of ``columns``: one grouped
    pass over the two windows' rows (on a Dask cluster with ``scheduler``)."""
    return collect_sums(case, lambda rows: rows.group_by(PERIOD, *columns).agg(sum_aggs()), [PERIOD, *columns],
                        windows={"baseline": baseline, "incident": incident}, scheduler=scheduler)
