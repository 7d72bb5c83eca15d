"""Prediction quality over time and by slice, in one grouped pass.

The pass is a mergeable partial aggregate: rows are grouped by the keys (time
window, slice values) *and* by the prediction's score bin and calibration bin
(:mod:`workbench.metrics`), and only sums are kept (rows, labeled rows, positives,
prediction sums, log-loss sums). :func:`quality_partial` builds that table for any
LazyFrame, :func:`merge_partials` adds tables of disjoint parts, and
:func:`finish` turns a partial into the metrics, so a partitioned or distributed
log needs no second implementation. Label metrics use labeled rows only.

>>> from workbench import open_case
>>> series = quality_series(open_case("sample_data/cases/control"))
>>> {"window", "normalized_entropy", "auc", "calibration_ratio"} <= set(series.table.columns)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from workbench._render import fmt, records
from workbench.case.columns import TS
from workbench.case.loader import Case
from workbench.data._frames import PERIOD, check_columns, collect_windows
from workbench.data._sums import sum_aggs
from workbench.metrics import ECE_BINS, clipped_expr, ece_bin, metric_from_sums, score_bin
from workbench.windows import Window

if TYPE_CHECKING:
    from collections.abc import Mapping

    from workbench.data.scan import LogScan

__all__ = ["QUALITY_COLUMNS", "QualitySeries", "finish", "merge_partials", "quality_between", "quality_partial",
           "quality_series"]

SB, EB = "_score_bin", "_ece_bin"
SUMS = ("rows", "labeled", "positives", "pred_sum", "pred_sq_sum", "pred_sum_labeled", "ll_sum", "ll_sq_sum",
        "ll_pos_sum", "logp_sum", "log1mp_sum")
HALF_CLICK = 0.5  # half a click: added to a period's clicks (onset._log_ratios), the floor of a window's sides (pool)
POOL_SUMS = ("positives", "pred_sum", "pred_sq_sum", "pred_sum_labeled", "ll_sum", "ll_sq_sum", "ll_pos_sum")  # kept in finished tables
QUALITY_COLUMNS = ("rows", "labeled", "label_join_rate", "label_rate", "prediction_mean", "log_loss",
                   "normalized_entropy", "auc", "calibration_ratio", "ece", "ne_se", "auc_bound")


def _partial_aggs() -> list[pl.Expr]:
    q = clipped_expr()
    return [
        *sum_aggs(),
        q.log().sum().alias("logp_sum"),  # for the label-free estimate (workbench.data.estimate)
        (1 - q).log().sum().alias("log1mp_sum"),
    ]


def quality_partial(lf: pl.LazyFrame, keys: list[pl.Expr | str], *, ece_bins: int = ECE_BINS) -> pl.LazyFrame:
    """The mergeable partial: sums per ``keys`` x score bin x calibration bin (lazy)."""
    return lf.group_by(*keys, score_bin().alias(SB), ece_bin(bins=ece_bins).alias(EB)).agg(_partial_aggs())


def merge_partials(tables: list[pl.DataFrame], keys: list[str]) -> pl.DataFrame:
    """Add partials of disjoint row sets: the result equals the partial of their union."""
    return pl.concat(tables).group_by(*keys, SB, EB).agg(pl.col(s).sum() for s in SUMS)


def finish(partial: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """The quality metrics (``QUALITY_COLUMNS``) per ``keys`` from a partial table."""
    sums = partial.group_by(keys).agg(pl.col(s).sum() for s in SUMS) if keys else partial.select(pl.col(s).sum() for s in SUMS)
    # ECE: |sum p - sum y| per equal-width bin over labeled rows
    cal = partial.group_by([*keys, EB]).agg(pl.col("pred_sum_labeled").sum(), pl.col("positives").sum())
    cal = (cal.group_by(keys).agg((pl.col("pred_sum_labeled") - pl.col("positives")).abs().sum().alias("_ece_num"))
           if keys else cal.select((pl.col("pred_sum_labeled") - pl.col("positives")).abs().sum().alias("_ece_num")))
    # AUC from score bins: (score bin, calibration bin) is a finer order of the same score
    neg = pl.col("labeled") - pl.col("positives")
    ordered = partial.sort([*keys, SB, EB]).with_columns(neg.alias("_neg"))
    below = pl.col("_neg").cum_sum().over(keys) if keys else pl.col("_neg").cum_sum()
    ordered = ordered.with_columns((below - pl.col("_neg")).alias("_below"))
    rank_aggs = [(pl.col("positives") * (pl.col("_below") + 0.5 * pl.col("_neg"))).sum().alias("_auc_num"),
                 (0.5 * pl.col("positives") * pl.col("_neg")).sum().alias("_tie_num")]
    ranks = ordered.group_by(keys).agg(rank_aggs) if keys else ordered.select(rank_aggs)
    if keys:
        out = sums.join(cal, on=keys, how="left", nulls_equal=True).join(ranks, on=keys, how="left", nulls_equal=True)
    else:
        out = pl.concat([sums, cal, ranks], how="horizontal")
    labeled, pos = pl.col("labeled"), pl.col("positives")
    pairs = pos * (labeled - pos)
    out = out.with_columns(
        pl.when(pairs > 0).then(pl.col("_auc_num") / pairs).alias("auc"),
        pl.when(labeled > 0).then(pl.col("_ece_num") / labeled).alias("ece"),
        pl.when(pairs > 0).then(pl.col("_tie_num") / pairs).alias("auc_bound"),
    )
    arrays = {c: out[c].cast(pl.Float64).to_numpy() for c in SUMS}
    ne, se = metric_from_sums(arrays, "normalized_entropy")
    values = {m: metric_from_sums(arrays, m)[0] for m in ("label_join_rate", "label_rate", "prediction_mean", "log_loss",
                                                         "calibration_ratio")}
    out = out.with_columns(*(pl.Series(m, v).fill_nan(None) for m, v in values.items()),
                           pl.Series("normalized_entropy", ne).fill_nan(None), pl.Series("ne_se", se).fill_nan(None))
    return out.select(*keys, *QUALITY_COLUMNS, *POOL_SUMS).sort(keys) if keys else out.select(*QUALITY_COLUMNS, *POOL_SUMS)


def _by(case: Case, by: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    if by is None:
        return ()
    names = (by,) if isinstance(by, str) else tuple(by)
    return check_columns(case, names, "slice", case.slices)


@dataclass(frozen=True, slots=True)
class QualitySeries:
    """Quality per time window (and slice value).

    ``table`` has one row per ``window`` [x slice value] with ``rows``, ``labeled``,
    ``label_join_rate``, ``label_rate``, ``prediction_mean``, ``log_loss``,
    ``normalized_entropy``, ``auc``, ``calibration_ratio``, ``ece``, plus ``ne_se``
    (delta-method standard error of NE), ``auc_bound`` (most the binned AUC can be
    off) and the sums ``POOL_SUMS`` that let windows be pooled exactly and give
    each row's sampling error.
    """

    table: pl.DataFrame
    every: str
    by: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"every": self.every, "by": list(self.by), "table": records(self.table)}

    def __str__(self) -> str:
        t = self.table
        if t.is_empty():
            return "quality series: no rows"
        ne = t["normalized_entropy"].drop_nulls().cast(pl.Float64)
        first, last = t["window"].min(), t["window"].max()
        lines = [f"quality every {self.every}{' by ' + ', '.join(self.by) if self.by else ''}: {t.height} rows, "
                 f"{first:%Y-%m-%d %H:%M}–{last:%Y-%m-%d %H:%M} UTC",  # type: ignore[str-bytes-safe]  # datetimes
                 f"  NE median {fmt(_float(ne.median()))} (min {fmt(_float(ne.min()))}, max {fmt(_float(ne.max()))}); "
                 f"label join rate median {fmt(_float(t['label_join_rate'].median()))}"]
        return "\n".join(lines)


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def quality_series(case: Case, *, every: str | None = None, by: str | tuple[str, ...] | None = None,
                   rows: pl.Expr | None = None, scan: LogScan | None = None) -> QualitySeries:
    """Quality metrics per time window (``every``, a polars duration such as ``"1h"``; by default the case's grain,
    or hourly when it is too sparse to have one) and slice value.

    One grouped pass over the timestamp, prediction, label and ``by`` columns;
    ``rows`` optionally filters the serving log first (e.g. ``pl.col("platform") == "ios"``).
    ``scan`` (:func:`workbench.data.scan.log_scan`) supplies the partial without reading the log when it covers the
    request (the same sums, so the same table up to float addition order).
    """
    names = _by(case, by)
    every = every or case.grain.grain or "1h"
    partial = scan.period_partial(every, names) if scan is not None and rows is None else None
    if partial is None:
        lf = case.predictions if rows is None else case.predictions.filter(rows)
        partial = quality_partial(lf, [pl.col(TS).dt.truncate(every).alias("window"), *names]).collect(engine="streaming")
    table = finish(partial, ["window", *names])
    return QualitySeries(table=table, every=every, by=names)


def quality_between(case: Case, window: Window, by: str | tuple[str, ...] | None = None) -> pl.DataFrame:
    """Quality metrics over the whole ``window`` (one row, or one per slice value)."""
    names = _by(case, by)
    partial = collect_windows(case, {"w": window}, lambda rows: quality_partial(rows, [PERIOD, *names])).drop(PERIOD)
    if partial.is_empty():
        return pl.DataFrame(schema=dict.fromkeys(names, pl.String) | dict.fromkeys(QUALITY_COLUMNS, pl.Float64))
    return finish(partial, list(names))


def pool(table: pl.DataFrame, metric: str) -> float:
    """One window's metric pooled exactly from rows of a quality table (AUC/ECE: labeled-weighted mean).

    The headline's figure: the same sums and the same definition
    (:func:`workbench.metrics.metric_from_sums`) as every period of the detector's series, except that a window's
    calibration ratio counts each side as at least half a click, as the detector's periods do
    (:func:`workbench.data.onset._log_ratios`): a window whose clicks all stopped, or whose predictions all fell to
    0, is a ratio of at least twice its expected clicks (or at most half a click over its clicks), not an undefined
    one. Undefined, a total loss of clicks over the whole traffic read as "no regression": the scan found it, and
    the materiality of a NaN ratio was False.
    """
    if table.is_empty():
        return float("nan")
    if metric == "rows":
        return float(table["rows"].sum())
    if metric in ("auc", "ece"):
        w = table.select(pl.col("labeled").filter(pl.col(metric).is_not_null()).sum()).item()
        return float(table.select((pl.col(metric) * pl.col("labeled")).sum()).item() / w) if w else float("nan")
    return pool_sums(table.select(pl.col("rows", "labeled", *POOL_SUMS).sum()).row(0, named=True), metric)


def pool_sums(sums: Mapping[str, float | np.ndarray], metric: str) -> float:
    """One window's ``metric`` from its summed columns (``rows``, ``labeled`` and :data:`POOL_SUMS`; scalars or
    one-element arrays): :func:`pool`'s definition, the half click included."""
    s = {k: float(np.asarray(v, dtype=float).reshape(-1)[0]) for k, v in sums.items()}
    if metric == "calibration_ratio" and s["labeled"]:
        return max(s["pred_sum_labeled"], HALF_CLICK) / max(s["positives"], HALF_CLICK)
    return float(metric_from_sums({k: np.array([v]) for k, v in s.items()}, metric)[0][0])
