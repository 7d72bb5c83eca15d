"""Label-free estimates for the hours whose labels have not arrived (confidence-based, as CBPE).

NannyML's CBPE (confidence-based performance estimation) estimates a
classifier's metrics from its scores alone, assuming the scores are calibrated
probabilities. Here the same idea for log loss, NE and calibration:

1. A *calibrator* ``c(score bin)`` is fitted on a reference window of reliably
   labeled hours (by default the last 12 before the label-delayed ones, the
   regime closest to them):
   isotonic regression of the label rate on the score over the fine score bins
   of :mod:`workbench.metrics`, weighted by labeled rows. With calibrated
   predictions ``c`` is the identity; otherwise it carries the reference's
   miscalibration forward (CBPE's assumption: the score-to-outcome mapping of
   the reference still holds).
2. For every hour, each row's label is replaced by its expectation ``c``:
   expected positives ``sum c``, expected log loss ``-sum[c ln p + (1 - c) ln(1 - p)]``
   (from the mergeable sums of ``ln p`` and ``ln(1-p)`` per score bin), hence the
   expected label rate, NE, calibration ratio ``sum p / sum c`` and ECE.

Results are *estimates*: columns are prefixed ``estimated_``, rows of delayed
hours are flagged ``estimated = True``, and measured values appear only in the
``measured_`` columns of reliably labeled hours, never mixed. ``backtest_mae``
is the mean absolute error of the NE estimate on the reliably labeled hours *before*
the reference window (as many as the reference spans): how well a calibrator
carries across that many hours, which includes the hourly measurement noise. A
large value says the score-to-outcome mapping changed in between. An estimate
cannot see a change in the outcome process (a label incident or a traffic
segment whose clicks changed): it only sees what the scores see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

import numpy as np
import polars as pl

from workbench._render import fmt, jsonable, records
from workbench.case.columns import TS
from workbench.case.loader import Case
from workbench.data.onset import reliable_rows
from workbench.data.quality import EB, SB, finish, quality_partial
from workbench.errors import WorkbenchError
from workbench.metrics import CLIP, SCORE_BINS, SCORE_BINS_PER_LOGIT, entropy_expr
from workbench.windows import Window

__all__ = ["Estimate", "estimate_unlabeled"]


@dataclass(frozen=True, slots=True)
class Estimate:
    """Per hour: ``window``, ``rows``, ``labeled``, ``estimated`` (label-delayed hour),
    ``estimated_label_rate``, ``estimated_log_loss``, ``estimated_normalized_entropy``,
    ``estimated_calibration_ratio``, ``estimated_ece`` and, for reliably labeled hours
    only, ``measured_normalized_entropy`` and ``measured_calibration_ratio``."""

    table: pl.DataFrame
    reference: Window
    delayed_hours: int
    backtest_mae: float
    method: str

    @property
    def delayed(self) -> pl.DataFrame:
        """Only the label-delayed hours, where the estimate stands in for the measurement."""
        return self.table.filter(pl.col("estimated"))

    def to_dict(self) -> dict:
        return {"reference": self.reference.to_dict(), "delayed_hours": self.delayed_hours,
                "backtest_mae": jsonable(self.backtest_mae), "method": self.method, "table": records(self.table)}

    def __str__(self) -> str:
        d = self.delayed
        ne = d["estimated_normalized_entropy"].drop_nulls()

        def short(v: object) -> str:  # aggregates of a Float64 column, which polars types as any Python literal
            return fmt(cast(float | None, v))

        body = (f"estimated NE {short(ne.mean())} (range {short(ne.min())}–{short(ne.max())}) over the {self.delayed_hours} "
                f"label-delayed hour(s)" if len(ne) else "no label-delayed hours")
        return f"label-free estimate (CBPE-style, calibrated on {self.reference}): {body}; backtest MAE {fmt(self.backtest_mae, 4)}"


def _calibrator(ref: pl.DataFrame) -> dict[int, float]:
    """Isotonic map from score bin to label rate, fitted on the reference's labeled rows."""
    from sklearn.isotonic import IsotonicRegression

    b = ref.group_by(SB).agg(pl.col("labeled").sum(), pl.col("positives").sum(), pl.col("pred_sum_labeled").sum())
    b = b.filter(pl.col("labeled") > 0).sort(SB)
    if b.is_empty():
        raise WorkbenchError("estimate_unlabeled", "the reference window has no labeled rows.",
                             "pass a reference window with joined labels (reference=...).")
    x = (b["pred_sum_labeled"] / b["labeled"]).to_numpy()
    y = (b["positives"] / b["labeled"]).to_numpy()
    iso = IsotonicRegression(y_min=CLIP, y_max=1 - CLIP, out_of_bounds="clip")
    iso.fit(x, y, sample_weight=b["labeled"].to_numpy())
    # every score bin, through the bin's centre probability
    centres = 1 / (1 + np.exp(-((np.arange(SCORE_BINS) + 0.5) / SCORE_BINS_PER_LOGIT - SCORE_BINS / (2 * SCORE_BINS_PER_LOGIT))))
    return dict(enumerate(iso.predict(centres).tolist()))


def estimate_unlabeled(case: Case, reference: Window | None = None, *, every: str = "1h",
                       reference_hours: float = 12) -> Estimate:
    """Expected log loss, NE, calibration ratio and ECE per hour from predictions alone.

    ``reference`` is where the calibrator is fitted (default: the last
    ``reference_hours`` reliably labeled hours before the label-delayed ones).

    >>> from workbench import open_case
    >>> est = estimate_unlabeled(open_case("sample_data/cases/control"))
    >>> est.delayed_hours, bool(est.delayed["estimated"].all())
    (6, True)
    """
    part = quality_partial(case.predictions, [pl.col(TS).dt.truncate(every).alias("window")]).collect(engine="streaming")
    measured = finish(part, ["window"]).sort("window")
    end, delayed = reliable_rows(measured)
    if reference is None:
        if end == 0:
            raise WorkbenchError(case.root, "no hour has reliably joined labels, so there is nothing to calibrate on.",
                                 "pass reference=Window(...) covering hours with labels.")
        step = measured["window"][1] - measured["window"][0] if measured.height > 1 else timedelta(hours=1)
        ref_end = measured["window"][end - 1] + step
        reference = Window(max(case.start, ref_end - timedelta(hours=reference_hours)), ref_end)
    cal = _calibrator(part.filter(reference.contains("window")))
    c = pl.col(SB).replace_strict(cal, default=None, return_dtype=pl.Float64)
    exp = part.with_columns(c.alias("_c")).with_columns(
        (pl.col("rows") * pl.col("_c")).alias("_pos"),
        (-(pl.col("_c") * pl.col("logp_sum") + (1 - pl.col("_c")) * pl.col("log1mp_sum"))).alias("_ll"),
        (pl.col("pred_sum") - pl.col("rows") * pl.col("_c")).alias("_gap"))
    per_ece = exp.group_by("window", EB).agg(pl.col("_gap").sum()).group_by("window").agg(pl.col("_gap").abs().sum().alias("_gap"))
    hourly = exp.group_by("window").agg(pl.col("rows").sum(), pl.col("labeled").sum(), pl.col("_pos").sum(), pl.col("_ll").sum(),
                                        pl.col("pred_sum").sum()).join(per_ece, on="window").sort("window")
    r = pl.col("_pos") / pl.col("rows")
    h = entropy_expr(r)
    reliable = pl.int_range(pl.len()) < end
    table = hourly.with_columns(
        (~reliable).alias("estimated"),
        r.alias("estimated_label_rate"),
        (pl.col("_ll") / pl.col("rows")).alias("estimated_log_loss"),
        (pl.col("_ll") / pl.col("rows") / h).alias("estimated_normalized_entropy"),
        (pl.col("pred_sum") / pl.col("_pos")).alias("estimated_calibration_ratio"),
        (pl.col("_gap") / pl.col("rows")).alias("estimated_ece"),
    ).join(measured.select("window", pl.col("normalized_entropy").alias("_ne"), pl.col("calibration_ratio").alias("_cr")), on="window")
    table = table.with_columns(pl.when(reliable).then(pl.col("_ne")).alias("measured_normalized_entropy"),
                               pl.when(reliable).then(pl.col("_cr")).alias("measured_calibration_ratio"))
    table = table.select("window", "rows", "labeled", "estimated", "estimated_label_rate", "estimated_log_loss",
                         "estimated_normalized_entropy", "estimated_calibration_ratio", "estimated_ece",
                         "measured_normalized_entropy", "measured_calibration_ratio")
    check = table.filter(~pl.col("estimated") & pl.col("window").is_between(
        pl.lit(reference.start - reference.duration), pl.lit(reference.start), closed="left"))
    err = (check["estimated_normalized_entropy"] - check["measured_normalized_entropy"]).abs().drop_nulls()
    mae = float(cast(float, err.mean())) if len(err) else math.nan  # a non-empty Float64 column has a float mean
    method = ("CBPE-style: isotonic calibrator (score bin -> label rate) fitted on the reference window's labels, "
              "expected outcomes replace the missing labels")
    return Estimate(table=table, reference=reference, delayed_hours=delayed, backtest_mae=mae, method=method)
