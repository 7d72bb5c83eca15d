"""Did prediction quality regress beyond its normal variation, from when, until when, and how badly?

Metrics watched (:data:`WATCHED`): normalized entropy (NE, higher is worse), the
calibration ratio ``sum p / sum y`` on the log scale (a move either way is worse)
and AUC (lower is worse), each on the quality series at the case's grain
(:mod:`workbench.case.grain`: the finest period at which enough periods hold enough
labelled rows; ``[case] grain`` overrides it).

Method, per metric:

1. **Label delay.** Trailing periods whose label join rate is below 90% of the
   typical rate are still waiting for labels (:func:`workbench.metrics.reliable_end`)
   and are not used. Nor are periods where neither the model nor the labels hold
   ``MIN_FIT_COUNT`` positives and negatives (their metrics are not defined well
   enough to weigh): the larger of the expected and observed counts, so an incident
   that removes the clicks does not remove the periods that show it, nor does one
   that collapses the predictions. For the same reason the calibration ratio's error
   is the binomial error at the larger of the two rates
   (:func:`workbench.metrics.calibration_log_se`), and the ratio's clicks carry half a
   count (a period with no clicks left is still measured; ``log(k + 1/2)`` is nearly
   unbiased for the log of a Poisson mean of 5 or more: Haldane 1955, Anscombe 1956).
   The model's side is a sum of predictions, not a count: it is only floored at half a
   click (predictions that collapsed to 0 read as ``0.5 / (k + 1/2)``, bounded). Half a
   count added there overstated a period expecting 5 clicks by 10% (``0.5 / 5``), so at
   fine grains the level a move away from 1 is judged from sat 2-10% too high.
2. **Cycle-aware baseline.** The metric is a level plus the harmonics of the day
   (two, at sub-daily grains once the log spans two days: over less than two cycles
   a harmonic is a free curve that takes in a step, an outside test's seven-hour log
   at 15 minutes lost an AUC fall of 2 % to it) and of the week (two, at grains up to a day once the
   log spans four weeks: over fewer cycles a lasting shift would pass for part of
   one), fitted by weighted least squares with each period weighted by its own
   sampling variance (NE: delta method from the period's sums; AUC:
   Hanley-McNeil; calibration ratio: binomial error of the positives). Ratios are
   modelled on the log scale, so their shifts are relative changes.
3. **A change is a shift on ``[tau, tau + L)``**: the regression starts at ``tau``
   and lasts ``L`` periods, or to the end of the data (the *epidemic* alternative
   of Levin & Kline 1985, which contains the single change point as ``L`` = to the
   end). Every ``tau`` with at least :func:`min_before` periods of history (8, or a
   week of them when fewer: 7 days, 4 weeks at the least) and every
   ``L`` of a geometric ladder (3, 4, 6, 8, 12, ... periods and "to the end") is
   scored by the shift's t statistic after projecting out the cycle
   (Frisch-Waugh), from cumulative sums: ``O(n |ladder| k)`` for ``n`` periods
   and ``k`` cycle terms. A short dip in a long log is measured on its own
   periods instead of being diluted over the rest.
4. **Robust noise, and normal variation from day to day.** Residuals are in units
   of each period's sampling error; their spread, ``1.4826 MAD`` of the fit with
   the best shift, is the over-dispersion (traffic mix, refreshes). It is floored
   at 1: sampling error is the floor, never the measure. Below a daily grain the
   periods of one calendar day also share a common deviation (a weekday's own
   click rate, a day of unusual traffic): its variance ``tau^2`` is estimated from
   the days' mean residuals (DerSimonian-Laird; from ``MIN_DAYS`` days on, a
   week: over fewer the estimate is mostly noise, so a log of a few days uses the
   longest part of a day it holds seven of, 12, 8, 6 ... hours: its slow
   variation is estimated, not taken for none), and a candidate's statistic is
   taken over ``sqrt(sigma^2 + tau^2 conc)``, ``conc`` the weight per day of the
   contrast it makes (:func:`_concentration`). On thousands of rows an hour a
   period's sampling error is tiny and a day's own deviation is what "normal"
   means. ``severity`` is the best statistic over that scale, a robust z; the
   onset and end are located by the fit over ``sigma`` alone. When the best shift
   apart from the best one, in what that one leaves, passes the threshold (step 5) on
   its own, it is a change too, not normal variation (an incident that ended before
   another began): the noise is then what the two leave (:func:`_second_shift`).
5. **Decision.** The statistic is a maximum over many ``(tau, L)``, so it is
   compared with the ``1 - alpha / m`` quantile of the same maximum under no
   change: ``NULL_DRAWS`` Gaussian series with the observed weights and days, put
   through steps 3-4 with one shift taken out, the top tenth of them extrapolated as an exponential tail (the
   maximum of Gaussians has a lighter tail, so the quantile errs high, by about
   0.2 sigma). ``m`` is the number of metrics watched: by Bonferroni, a
   case with no change alarms on *any* metric with probability at most
   ``alpha = 0.001`` (family-wise), if the model holds. (A second shift is taken out only when it passes this
   threshold itself, which under no change it rarely does: on Gaussian series the rate stays the level, 0.046-0.057
   at 0.05. The null draws hold no day-to-day variation, and where a log has it the rate is above the level, the
   more so the fewer its days: on ten hourly days with a day's sd 1-1.4 periods' sampling errors, 9 % at a
   level of 0.033 % and 35 % at 5 % (``benchmarks/onset_day_effects.py``; 0 % and 5.2 % without day effects).
   Draws with the variation the log showed would bring it to 2 % and 11 % but lose regressions a user wants found
   (a 13 % calibration step on a four-day drifting log, a 27 % two-day label incident among ten days whose
   calibration varies 5 % a day), so dev controls measure what this means on logs like users'.) A regression must
   also be
   material: ``MIN_EFFECT`` relative to the level before it (NE and AUC 1%; the
   calibration ratio 5%, i.e. x1.05 or /1.05), because on millions of rows every
   change is significant; and material with confidence: the shift's worsening less
   ``MATERIAL_Z`` (1.645) of its standard error, the lower one-sided 95% bound, still
   reaches the floor, so a true move of 3.5% that noise carried to 5.6% is no
   regression. The move is measured against the level *before* the shift: for
   a shift that ended, the level after it is a term of its own (its error widens
   by what that term shares with the shift), so weeks followed by a lasting
   improvement (a population the model ranks better) are not "a regression that
   recovered". Where the design holds no weekly term (a log under four weeks, or one read per week), the part of
   the weekly cycle a short log holds and a population drifting across the log are a slow curve the scan can take
   for a lasting shift; so the shift's worsening
   must also keep, by its estimate, the floor's size when a line through the log is fitted beside it (the same
   :func:`worsening` as below): a step keeps its size there, a drift does not. (A line in the scan itself would cost a shift at
   mid-log half its statistic.)
   For calibration, material means *worse*: the served
   predictions moved at least 5% further from the label rate (``|log ratio|``
   grew by ``log 1.05``, :func:`worsening`); a ratio going from 1.08 to 0.97 is a
   recalibration, not a regression. A move across 1 that lands about as far on the other side is judged
   by who made it: the served predictions (their own move carries at least half of it) broke the
   model's relation to the label rate by the whole move; the label rate alone is the population's.
   **The traffic mix.** In a case with slice columns, a regressed NE or calibration ratio is read again between the
   same windows with each window at the other's mix of each column's values (:mod:`workbench.data.mix`, direct
   standardization): when its move is material over the values both windows hold and, within the values, under
   either window's weights, it is not material and at most half of that move, the population moved between
   segments whose own quality held (a platform the model always over-predicted grew), and the metric is not a
   regression; the answer says what moved (``Onset.mix``, :meth:`Onset.mixed`). Both weights, so a segment that
   breaks as it grows is not weighed at its old, small share alone. AUC is not a mean over segments and is never
   read so. This cannot make an alarm, only remove one, and only where the mix carries most of the move.
6. **The headline metric** is the one that regressed most: the largest effect
   relative to its materiality floor (a calibration ratio from 1.04 to 1.50 is
   7 floors; NE up 1% is one).
7. **Onset and end.** The onset is where the squared profiles of the regressed
   metrics peak together (one incident, one onset). Given it, the end is the later
   period where their squared fits peak together (one end: a metric whose periods
   are noisy where the incident ends does not place it alone), then the onset is
   refined given the end. The incident *ended* there when the level after it is back: the
   return is significant at the same per-metric level and less than half of the
   shift remains. Otherwise it lasts (``end`` is None).
8. **The latest regression.** When the incident ended, the log is scanned again (steps
   2-7) for a shift that starts after its end, the ended one a term of the design; a
   regression found there is the answer, and the one that ended before it is its
   ``earlier`` (:func:`_latest`).

Windows: ``incident`` is ``[onset, end)`` (or to the end of the reliably labelled
periods); ``baseline`` is the same span before the onset, aligned to the cycle: the
same hours one cycle earlier (a day; a week at daily grain) when the incident is
shorter than the cycle, else whole cycles before the onset (clipped to the data); when that holds no labelled row
(an outage there), the periods with labelled rows just before the onset, as many as the incident holds.
Without a detection, the last cycle against the one before. :func:`measure_windows`
reports every metric between two given windows (the user's ``--baseline`` and
``--incident``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from workbench._render import fmt, jsonable, records
from workbench.case.grain import GrainChoice, grain_delta
from workbench.case.loader import Case
from workbench.data._sums import window_cells
from workbench.data.mix import STANDARDIZED, MixReading, carried, mix_readings
from workbench.data.quality import HALF_CLICK, POOL_SUMS, QualitySeries, pool, quality_between, quality_series
from workbench.errors import WorkbenchError
from workbench.metrics import LOG_SCALE, MAD_TO_SD, auc_se, calibration_log_se, counted_classes, metric_from_sums, reliable_end
from workbench.windows import Window, iso

if TYPE_CHECKING:
    from collections.abc import Callable

    from workbench.data.scan import LogScan

    MixRead = Callable[[Window, Window, tuple[str, ...]], list[MixReading]]  # the mix readings of two windows (step 5)

__all__ = ["DIRECTION", "MIN_EFFECT", "WATCHED", "MetricVerdict", "Onset", "PendingLabels", "detect_onset", "measure_windows",
           "pending_labels", "reliable_rows", "retimed"]

WATCHED = ("normalized_entropy", "calibration_ratio", "auc")
# +1: higher is worse, -1: lower is worse, 0: a move either way is a regression
DIRECTION = {"normalized_entropy": 1, "log_loss": 1, "auc": -1, "calibration_ratio": 0, "prediction_mean": 0, "label_rate": 0}
MIN_EFFECT = {"normalized_entropy": 0.01, "log_loss": 0.01, "auc": 0.01,
              "calibration_ratio": math.log(1.05), "prediction_mean": math.log(1.05), "label_rate": math.log(1.05)}
MIN_BEFORE = 8  # periods of history before a candidate onset, or a week of them when a week holds fewer (min_before)
MIN_BEFORE_FLOOR = 4  # ... but never fewer than this (a weekly log: a month)
MIN_LENGTH = 3  # periods: a shift shorter than this is a blip, not a regression
MIN_AFTER_END = 2  # periods after an end that show the recovery
# A period enters the fit with at least this many positives and negatives; it weighs by its precision. (The grain
# is chosen so that typical periods hold 20 of each: workbench.case.grain. A segment's thinner periods still count.)
MIN_FIT_COUNT = 5
NULL_DRAWS = 1000
# A shift is material when its worsening, less this many of its standard errors, still reaches the floor: the lower
# one-sided 95% bound (a true move just under the floor is not called material because noise carried it over).
MATERIAL_Z = NormalDist().inv_cdf(0.95)
# Days with usable periods needed to estimate the day-to-day variance: a week (each weekday once). Over fewer, the
# estimate is mostly noise (its relative error is about sqrt(2 / (D - 1)): 0.8 at four days), and one odd day would
# pass for the normal variation; a log of a few days estimates it over parts of days (BLOCK_HOURS, _days).
MIN_DAYS = 7
# Parts of a day that stand for the day in a log of fewer than MIN_DAYS days (_days): each divides the day, and one
# stands for it only when it holds BLOCK_PERIODS periods (over fewer its deviation is hardly told from theirs).
BLOCK_HOURS = (12.0, 8.0, 6.0, 4.0, 3.0, 2.0)
BLOCK_PERIODS = 4
TAIL = 0.1  # the share of null draws whose excesses fit the extrapolated tail


def min_before(grain_hours: float) -> int:
    """Periods of history a candidate onset needs at a grain: ``MIN_BEFORE``, or a week of periods when a week holds
    fewer (a daily log has seen every weekday once: 7), never fewer than ``MIN_BEFORE_FLOOR`` (a weekly log: a
    month). Eight weeks of a weekly log would leave an onset a month into five months untestable, while the
    generator's warm-up is a fifth of the span (dev feature/decorrelated_shuffle/15: 4 weeks, unseen)."""
    return max(MIN_BEFORE_FLOOR, min(MIN_BEFORE, round(168 / grain_hours)))


def worsening(metric: str, level: float, shift: float, moved: float | None = None) -> float:
    """How much worse ``metric`` got when it moved by ``shift`` from ``level`` (in its units; log units on a log scale).

    NE and AUC have a worse direction; the calibration ratio is worse the further it is from 1, so on its log
    scale the worsening is ``|level + shift| - |level|`` (negative when the move brought it closer to 1). When
    the served predictions made the move (``moved``: their own log move over the same windows, carrying at least
    half of ``shift``: they moved more than the labels did) and it did not bring the ratio closer to 1, the
    worsening is the whole move: over-prediction turned into under-prediction as large is the model's relation to
    the label rate broken by ``|shift|``, not a wash (dev feature/coverage_null/15: the predictions fell 12% with
    the label rate steady, the ratio went from 1.06 to 0.93). A label rate that moved across 1 on its own, the
    population's move, is judged by the distance from 1 alone. The rule has two cases, not a blend: a move that ends
    closer to 1 than it started is a recalibration (negative), one that does not is the whole move, so near the
    mirror image of the level (1.06 -> 0.943) the worsening jumps from about 0 to ``|shift|``."""
    d = DIRECTION[metric]
    if d:
        return shift * d
    if metric in LOG_SCALE and math.isfinite(level):
        away = abs(level + shift) - abs(level)
        if moved is not None and math.isfinite(moved) and moved * shift >= shift * shift / 2 and away >= 0:
            return abs(shift)
        return away
    return abs(shift)


def _floor(metric: str, level: float) -> float:
    """The smallest worsening that is material, in :func:`worsening`'s units (``level`` is the value before; ratios are
    compared on the log scale, so their floor does not depend on it)."""
    return MIN_EFFECT[metric] if metric in LOG_SCALE else MIN_EFFECT[metric] * abs(level)


def material(metric: str, before: float, after: float, se: float = 0.0, moved: float | None = None) -> bool:
    """Whether ``metric`` going from ``before`` to ``after`` (pooled values) is a material regression: worse by at least
    ``MIN_EFFECT`` (relative to ``before``; on the log scale for ratios), by the lower bound ``worsening - MATERIAL_Z
    se`` when the change's standard error ``se`` (log units for ratios) is given. ``moved``: the served
    predictions' own log move between the same windows (:func:`prediction_move`; see :func:`worsening`)."""
    move = _level_shift(metric, before, after)
    return move is not None and _material_shift(metric, *move, se, moved)


def _level_shift(metric: str, before: float, after: float) -> tuple[float, float] | None:
    """The level before and the shift to ``after``, in :func:`worsening`'s units (log units for ratios); None where the
    move is not defined (a value not finite, a ratio not positive)."""
    if not (math.isfinite(before) and math.isfinite(after)):
        return None
    if metric in LOG_SCALE:
        return (math.log(before), math.log(after) - math.log(before)) if before > 0 and after > 0 else None
    return before, after - before


def _material_shift(metric: str, level: float, shift: float, se: float, moved: float | None = None) -> bool:
    """``shift`` from ``level`` (log units for ratios) is material with confidence (module docstring, step 5)."""
    return worsening(metric, level, shift, moved) - MATERIAL_Z * se >= _floor(metric, level)


def served_move(pred_before, labeled_before, pred_after, labeled_after) -> np.ndarray:
    """The log change of the labelled rows' mean prediction from one window's sums (``pred_sum_labeled``,
    ``labeled``) to another's: the served predictions' side of a calibration ratio's move (the other side is the
    label rate's). Scalars or arrays (one per slice); not finite where a window has no labelled rows or predictions."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log((np.asarray(pred_after, dtype=float) / labeled_after)
                      / (np.asarray(pred_before, dtype=float) / labeled_before))


def prediction_move(baseline: pl.DataFrame, incident: pl.DataFrame) -> float:
    """:func:`served_move` between two windows of a quality table (NaN where it is not finite)."""
    sums = [(float(t["pred_sum_labeled"].sum()), float(t["labeled"].sum())) if t.height else (math.nan, math.nan)
            for t in (baseline, incident)]
    move = float(served_move(*sums[0], *sums[1]))
    return move if math.isfinite(move) else math.nan


# ---------------------------------------------------------------- results
@dataclass(frozen=True, slots=True)
class MetricVerdict:
    """One watched metric: its pooled values in the two windows and whether it regressed.

    ``severity`` is the robust z of its best shift, ``threshold`` the critical value it
    had to beat, ``effect`` the shift relative to the level before it (ratios:
    ``exp(log shift) - 1``), ``floors`` the effect in units of its materiality floor.
    """

    metric: str
    baseline: float
    current: float
    regressed: bool
    severity: float = math.nan
    threshold: float = math.nan
    effect: float = math.nan
    floors: float = 0.0
    onset: datetime | None = None
    end: datetime | None = None
    tested: bool = True
    sigma: float = math.nan  # the over-dispersion: residual spread in units of sampling error (>= 1)
    day_sd: float = 0.0  # a calendar day's own deviation beyond sampling error (metric units; log units for ratios)
    start: datetime | None = None  # where its best shift starts, significant or not (``severity`` is that shift's)

    def to_dict(self) -> dict:
        return {"metric": self.metric, "baseline": jsonable(self.baseline), "current": jsonable(self.current),
                "regressed": self.regressed}

    def detail(self) -> dict:
        return jsonable({"metric": self.metric, "baseline": self.baseline, "current": self.current, "regressed": self.regressed,
                         "severity": self.severity, "threshold": self.threshold, "effect": self.effect, "floors": self.floors,
                         "onset": self.onset, "end": self.end, "tested": self.tested})  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Onset:
    """The verdict on prediction quality: whether it regressed, which metric most, from when until when.

    ``metric``, ``baseline_value``, ``current_value``, ``severity``, ``effect`` and
    ``threshold`` describe the headline metric; ``metrics`` every metric watched.
    ``end`` is the first period after the quality recovered (None while it lasts).
    ``grain`` is the period of the series (None when the case is too sparse to test:
    ``testable`` is False and ``reason`` says why).
    """

    detected: bool
    metric: str
    onset: datetime | None
    baseline_value: float
    current_value: float
    severity: float
    effect: float
    threshold: float
    baseline: Window
    incident: Window
    label_delay_hours: int
    series: pl.DataFrame = field(repr=False)  # per period: window, value, expected, z, used + the quality columns
    method: str = ""
    end: datetime | None = None
    grain: str | None = "1h"
    metrics: tuple[MetricVerdict, ...] = ()
    testable: bool = True
    reason: str = ""
    forced: bool = False  # the windows were given, not detected
    earlier: Onset | None = field(default=None, repr=False)  # a regression that ended before this one began (_latest)
    mix: tuple[MixReading, ...] = ()  # metrics whose whole-traffic move the traffic mix carried (step 5): not regressions

    def verdict(self, metric: str) -> MetricVerdict | None:
        return next((m for m in self.metrics if m.metric == metric), None)

    def closest(self) -> str | None:
        """Without a detection, the metric that came closest and where its best shift starts, in words; None when no
        metric was tested or nothing was scanned. The windows of a non-detection are the last cycle and the one before,
        which may both lie inside a regression the scan did not call (an outside test read "calibration 0.980 → 0.601"
        with ``regressed: false`` as stable): this says what the scan saw and how far from its threshold it was."""
        near = [m for m in self.metrics if m.tested and m.start is not None and m.threshold > 0 and math.isfinite(m.severity)]
        if self.detected or not near:
            return None
        m = max(near, key=lambda v: v.severity / v.threshold)
        return (f"closest to a regression: {m.metric}, a shift from {m.start:%Y-%m-%d %H:%M} UTC at robust z "
                f"{m.severity:.1f} against its threshold {m.threshold:.1f} (effect {m.effect:+.1%})")

    def mixed(self) -> str | None:
        """In words, the moves the traffic mix carried (module docstring, step 5), or None: the population moved
        between segments whose own quality held, a finding about the traffic, not a regression."""
        if not self.mix:
            return None
        return "; ".join(str(r) for r in self.mix) + ": the population moved, the segments' own quality held (a " \
            "traffic-mix finding, not a regression)"

    @property
    def direction(self) -> int:
        """Which way the headline metric moved between the windows: +1 up, -1 down (or not at all). For a metric that
        regresses either way (the calibration ratio) this is the way it regressed."""
        return 1 if self.current_value > self.baseline_value else -1

    def to_dict(self) -> dict:
        return {
            "detected": self.detected, "metric": self.metric, "onset": iso(self.onset) if self.onset else None,
            "end": iso(self.end) if self.end else None, "grain": self.grain, "testable": self.testable, "reason": self.reason,
            "baseline": jsonable(self.baseline_value), "current": jsonable(self.current_value),
            "severity": jsonable(self.severity), "effect": jsonable(self.effect), "threshold": jsonable(self.threshold),
            "baseline_window": self.baseline.to_dict(), "incident_window": self.incident.to_dict(),
            "label_delay_hours": self.label_delay_hours, "method": self.method,
            "metrics": [m.detail() for m in self.metrics],
            "series": records(self.series.select("window", "value", "expected", "z", "used")) if "value" in self.series.columns
            else [],
            "earlier": None if self.earlier is None else {
                "metric": self.earlier.metric, "onset": iso(self.earlier.onset) if self.earlier.onset else None,
                "end": iso(self.earlier.end) if self.earlier.end else None, "baseline": jsonable(self.earlier.baseline_value),
                "current": jsonable(self.earlier.current_value)},
            "mix": [r.to_dict() for r in self.mix],
        }

    def __str__(self) -> str:
        if not self.testable:
            return f"prediction quality cannot be tested: {self.reason}"
        if not self.detected:
            mixed = self.mixed()
            return (f"{self.metric}: no regression beyond normal variation (robust z {fmt(self.severity, 1)} < "
                    f"{fmt(self.threshold, 1)} or effect {self.effect:+.1%} below the floor); "
                    f"windows baseline {self.baseline}, incident {self.incident}"
                    + (f". {mixed[:1].upper()}{mixed[1:]}" if mixed else ""))
        until = f" until {iso(self.end)}" if self.end else ""
        return (f"{self.metric}: regressed from {fmt(self.baseline_value)} to {fmt(self.current_value)} "
                f"({self.effect:+.1%}) from {iso(self.onset) if self.onset else '?'}{until} per {self.grain} "
                f"(robust z {fmt(self.severity, 1)}, threshold {fmt(self.threshold, 1)}); baseline {self.baseline}")


# ---------------------------------------------------------------- sampling error per period
def _sampling_se(table: pl.DataFrame, metric: str) -> np.ndarray:
    """Each period's standard error of ``metric`` (log scale for ratios) from its own rows."""
    n = table["labeled"].cast(pl.Float64).to_numpy()
    rows = table["rows"].cast(pl.Float64).to_numpy()
    pos = table["positives"].cast(pl.Float64).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        match metric:
            case "normalized_entropy":
                return table["ne_se"].cast(pl.Float64).fill_null(np.nan).to_numpy()
            case "log_loss":
                mean = table["ll_sum"].to_numpy() / n
                return np.sqrt(np.maximum(table["ll_sq_sum"].to_numpy() / n - mean**2, 0) / n)
            case "auc":
                auc = table["auc"].cast(pl.Float64).fill_null(np.nan).to_numpy()
                return np.array([auc_se(a, p, q) for a, p, q in zip(auc, pos, n - pos, strict=True)])
            case "calibration_ratio" | "label_rate":
                # at the larger of the expected and observed rates: neither side's collapse removes its own evidence
                return calibration_log_se(n, table["pred_sum_labeled"].cast(pl.Float64).to_numpy(), pos)
            case "prediction_mean":
                mean = table["pred_sum"].to_numpy() / rows
                var = np.maximum(table["pred_sq_sum"].to_numpy() / rows - mean**2, 0)
                return np.sqrt(var / rows) / mean
    raise WorkbenchError("detect_onset", f"unknown metric '{metric}'.", f"use one of {list(DIRECTION)}.")


# ---------------------------------------------------------------- the shift scan
def _design(t_hours: np.ndarray, grain_hours: float, span: float | None = None) -> np.ndarray:
    """Level, plus two harmonics of the day below a daily grain once the data spans two days, and of the week up to
    a daily grain once it spans four weeks; a harmonic is kept only when the grain resolves it (at least two periods
    per cycle). ``span`` (hours) decides the terms when the rows evaluated are not the rows fitted."""
    cols = [np.ones_like(t_hours)]
    if span is None:
        span = float(t_hours[-1] - t_hours[0]) if len(t_hours) else 0.0
    cycles = [24.0] if _daily(grain_hours, span) else []
    if _weekly(grain_hours, span):
        cycles.append(168.0)
    for period in cycles:
        for k in (1, 2):
            if period / k >= 2 * grain_hours:
                cols += [np.cos(2 * np.pi * k * t_hours / period), np.sin(2 * np.pi * k * t_hours / period)]
    return np.column_stack(cols)


def _daily(grain_hours: float, span: float) -> bool:
    """Whether the design holds the daily cycle: below a daily grain, once the data spans two days (each hour of the
    day seen twice). Over less, the day's harmonics are free curves, not a cycle: in an outside test's seven-hour log
    at 15 minutes they took in a step at 10:30 (AUC 0.777 -> 0.761 on 150k rows) and the answer was "no regression"."""
    return grain_hours < 24 and span + grain_hours >= 2 * 24  # span: from the first period's start to the last's


def _weekly(grain_hours: float, span: float) -> bool:
    """Whether the design holds the weekly cycle: at grains up to a day, once the data spans four weekly cycles
    (over fewer, a lasting shift would pass for part of one)."""
    return grain_hours <= 24 and span >= 28 * 24


def _ladder(n: int) -> np.ndarray:
    """Shift lengths scanned: 3, 4, 6, 8, 12, 17, 24, ... periods (ratio sqrt 2), below ``n``; "to the end" is apart."""
    lengths = {round(MIN_LENGTH * 2 ** (k / 2)) for k in range(2 * max(int(math.log2(max(n, 2))), 1) + 2)}
    return np.array(sorted(x for x in lengths if x < n), dtype=np.int64)


def candidate_shifts(n: int, before: int) -> tuple[np.ndarray, np.ndarray]:
    """The shifts scanned on ``n`` periods (step 3): ``(start, stop)`` index pairs, stop exclusive, for every start with
    ``before`` periods of history and every length of the ladder that ends before the data do, and "to the end"."""
    starts_l, stops_l = [], []
    taus = np.arange(before, n - MIN_LENGTH + 1)
    for length in _ladder(n):
        ok = taus[taus + length < n]  # shifts that end before the data do
        starts_l.append(ok)
        stops_l.append(ok + length)
    starts_l.append(taus)
    stops_l.append(np.full(len(taus), n))  # to the end
    return np.concatenate(starts_l), np.concatenate(stops_l)


@dataclass(frozen=True)
class _Space:
    """The weighted, cycle-projected space of one metric's usable periods and its candidate shifts."""

    sw: np.ndarray  # sqrt weights (n)
    q: np.ndarray  # orthonormal basis of the weighted design (n x k)
    starts: np.ndarray  # candidate (start, stop) index pairs, stop exclusive
    stops: np.ndarray
    norms: np.ndarray  # ||M s|| per candidate
    day: np.ndarray | None  # calendar day (part of a day in a short log: _days) of each period below a daily grain
    conc: np.ndarray  # per candidate: what a day's common deviation adds to its variance, per tau^2 (_concentration)
    min_before: int  # periods of history a candidate onset needs (min_before)

    @property
    def n(self) -> int:
        return len(self.sw)

    def project(self, y: np.ndarray) -> np.ndarray:
        """``M y``: residual of the weighted series (columns) on the cycle design."""
        return y - self.q @ (self.q.T @ y)

    def prefix(self, r: np.ndarray) -> np.ndarray:
        """Prefix sums of ``r * sw`` (rows: n + 1), so a shift's numerator is a difference of two entries."""
        rw = r * (self.sw[:, None] if r.ndim == 2 else self.sw)
        return np.concatenate([np.zeros((1, *rw.shape[1:])), np.cumsum(rw, axis=0)])

    def shift_unit(self, start: int, stop: int) -> np.ndarray:
        s = np.zeros(self.n)
        s[start:stop] = self.sw[start:stop]
        ms = self.project(s)
        return ms / max(float(np.linalg.norm(ms)), 1e-12)


def _days(t_hours: np.ndarray, first_hour: float, grain_hours: float) -> np.ndarray | None:
    """The block (counted from the first period's) whose periods share a common deviation, below a daily grain: the
    calendar day (UTC); in a log of fewer than ``MIN_DAYS`` days, the longest part of a day (``BLOCK_HOURS``, of
    ``BLOCK_PERIODS`` periods at least) the log holds ``MIN_DAYS`` of, so that slow variation over a few days is
    estimated rather than taken for none. None at a grain of a day or more, where a period's own spread already
    holds the day-to-day variation. ``first_hour`` is the first period's hour of the day."""
    if grain_hours >= 24 or not len(t_hours):
        return None
    block = 24.0
    span = float(t_hours[-1] - t_hours[0]) + grain_hours
    if span < MIN_DAYS * 24:
        parts = [b for b in BLOCK_HOURS if b >= BLOCK_PERIODS * grain_hours and span >= MIN_DAYS * b]
        block = parts[0] if parts else block
    day = np.floor((t_hours + first_hour) / block).astype(np.int64)
    return day - day[0]


def _concentration(weights: np.ndarray, day: np.ndarray | None, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """How much a common deviation per calendar day adds to each candidate's standardized statistic: its variance is
    ``sigma^2 + tau^2 conc``. The candidate ``c = [start, stop)`` is a contrast of its periods against the others
    (``o``): with ``W_cd`` and ``W_od`` the weights each side holds of day ``d``, the day deviations add
    ``tau^2 sum_d (W_cd / W_c - W_od / W_o)^2`` to its variance, and its sampling error is ``1 / W_c + 1 / W_o``::

        conc = sum_d (W_cd / W_c - W_od / W_o)^2 / (1 / W_c + 1 / W_o)

    About one day's weight for a shift within a day, and the same for one spanning many days (their deviations
    average out as the periods' do); the same for a candidate and its complement."""
    if day is None or not len(starts):
        return np.zeros(len(starts))
    pre = np.concatenate([[0.0], np.cumsum(weights)])
    n_days = int(day[-1]) + 1
    first = np.searchsorted(day, np.arange(n_days), side="left")
    last = np.searchsorted(day, np.arange(n_days), side="right")
    per_day = pre[last] - pre[first]
    sq = np.concatenate([[0.0], np.cumsum(per_day**2)])
    d1, d2 = day[starts], day[stops - 1]
    same = d1 == d2
    head = pre[np.where(same, stops, last[d1])] - pre[starts]  # the candidate's weight on its first day
    tail = np.where(same, 0.0, pre[stops] - pre[first[d2]])  # ... and on its last
    middle = np.where(same, 0.0, sq[d2] - sq[np.minimum(d1 + 1, n_days)])  # whole days strictly between
    w_c = pre[stops] - pre[starts]
    a_c = head**2 + tail**2 + middle
    # with S = sum_d W_d W_cd: sum_d W_od^2 = A - 2 S + A_c and sum_d W_cd W_od = S - A_c (a day both sides share)
    shared = per_day[d1] * head + np.where(same, 0.0, per_day[d2] * tail) + middle
    w_o = pre[-1] - w_c
    a_o = np.maximum(sq[-1] - 2 * shared + a_c, 0.0)
    both = np.maximum(shared - a_c, 0.0)
    wc = np.maximum(w_c, 1e-300)
    wo = np.maximum(w_o, 1e-300)
    outside = w_o > 0
    spread = a_c / wc**2 + np.where(outside, a_o / wo**2 - 2 * both / (wc * wo), 0.0)
    return np.maximum(spread, 0.0) / (1 / wc + np.where(outside, 1 / wo, 0.0))


def _day_variance(space: _Space, resid: np.ndarray, sigma: np.ndarray | float, taken: np.ndarray | None = None
                  ) -> np.ndarray | float:
    """``tau^2``, the variance of a calendar day's common deviation beyond its periods' sampling error (metric units
    squared; columns of ``resid`` at once), by the DerSimonian-Laird moment estimator on the days' weighted mean
    residuals: ``sigma^2 max(0, Q - (D - 1)) / (sum W - sum W^2 / sum W)``. The residuals are those left by the best
    shift, so the incident itself does not count as day-to-day variation. Zero without days or with fewer than
    ``MIN_DAYS``.

    ``taken`` (one series only): the orthonormal unit vectors of the shifts taken out of ``resid``, whose fit absorbed
    part of the days' deviations. Both moments are then those of the residuals: ``Q`` expects ``D - 1 - tr H`` under no
    day effect (``H = U' P U``, ``P`` the projection on day-constant vectors less the grand mean: a shift covering whole
    days takes up to one of them), and ``tau^2`` adds ``tr(E E' (I - UU') P (I - UU'))`` to it, ``E`` the days'
    indicators (the classic ``sum W - sum W^2 / sum W`` when nothing was taken). Without this a shift fitted to the
    most unusual day would be tested against a day-to-day variance that day no longer shows (:func:`_second_shift`)."""
    day = space.day
    if day is None:
        return 0.0 if resid.ndim == 1 else np.zeros(resid.shape[1])
    w = space.sw**2
    per_day = np.bincount(day, weights=w)
    keep = per_day > 0
    if keep.sum() < MIN_DAYS:
        return 0.0 if resid.ndim == 1 else np.zeros(resid.shape[1])
    rw = resid * (space.sw[:, None] if resid.ndim == 2 else space.sw)
    starts = np.searchsorted(day, np.flatnonzero(keep), side="left")
    sums = np.add.reduceat(rw, starts, axis=0)  # per kept day (rows)
    wd = per_day[keep]
    means = sums / (wd[:, None] if rw.ndim == 2 else wd)
    total = wd.sum()
    grand = (wd @ means) / total
    q = (wd @ ((means - grand) ** 2) if rw.ndim == 1 else wd @ ((means - grand[None, :]) ** 2)) / np.square(sigma)
    dof, spread = len(wd) - 1.0, total - (wd**2).sum() / total
    if taken is not None:
        a = np.add.reduceat(taken * space.sw[:, None], starts, axis=0)  # e_d . u_j (days x shifts)
        sums_a = a.sum(axis=0)
        h = (a / wd[:, None]).T @ a - np.outer(sums_a, sums_a) / total  # U' P U
        g = a.T @ a  # U' E E' U
        dof -= float(np.trace(h))
        spread += -2.0 * float(np.trace(g) - (wd @ a) @ sums_a / total) + float(np.trace(g @ h))
    return np.square(sigma) * np.maximum(q - dof, 0.0) / max(spread, 1e-300)


def _space(t_hours: np.ndarray, weights: np.ndarray, grain_hours: float, pairs: tuple[np.ndarray, np.ndarray] | None = None,
           day: np.ndarray | None = None, earlier: np.ndarray | None = None, first: int = 0) -> _Space:
    """``earlier``: columns of the design beside the cycle, one per regression that ended before (its periods' indicator,
    step 8); ``first``: the earliest start of a candidate (the period after the last of them ended)."""
    n = len(weights)
    sw = np.sqrt(weights)
    design = _design(t_hours, grain_hours)
    q, _ = np.linalg.qr((design if earlier is None else np.column_stack([design, earlier])) * sw[:, None])
    before = max(min_before(grain_hours), first)
    starts, stops = candidate_shifts(n, before) if pairs is None else pairs
    w_pre = np.concatenate([[0.0], np.cumsum(weights)])
    g = np.concatenate([np.zeros((1, q.shape[1])), np.cumsum(q * sw[:, None], axis=0)])
    qs = g[stops] - g[starts]
    norm2 = (w_pre[stops] - w_pre[starts]) - (qs * qs).sum(axis=1)
    return _Space(sw, q, starts, stops, np.sqrt(np.maximum(norm2, 1e-12)), day, _concentration(weights, day, starts, stops),
                  before)


def _stats(space: _Space, r: np.ndarray) -> np.ndarray:
    """Signed t statistics (candidates x columns of ``r``) of every candidate shift, ``r = M y``."""
    p = space.prefix(r)
    return (p[space.stops] - p[space.starts]) / (space.norms[:, None] if r.ndim == 2 else space.norms)


def _orient(stat: np.ndarray, direction: int) -> np.ndarray:
    return stat * direction if direction else np.abs(stat)


def _noise(space: _Space, resid: np.ndarray, taken: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | float]:
    """``(sigma, tau^2)`` of the residuals the best shift leaves (columns: draws): their robust spread in units of
    sampling error (``1.4826 MAD``, floored at 1) and the day-to-day variance (:func:`_day_variance`, ``taken`` as
    there)."""
    sigma = np.maximum(MAD_TO_SD * np.median(np.abs(resid - np.median(resid, axis=0)), axis=0), 1.0)
    return sigma, _day_variance(space, resid, sigma, taken)


def _scan(space: _Space, r: np.ndarray, direction: int, threshold: float) -> tuple[int, float, float, float]:
    """``(best, sigma, tau^2, severity)`` of the projected series ``r`` (module docstring, steps 3-4): the candidate
    that fits best, the noise the best shift leaves (or the best two, :func:`_second_shift`) and the best statistic
    over that noise, decided over day-to-day variation too."""
    stat = _stats(space, r)
    oriented = _orient(stat, direction)
    best = int(np.argmax(oriented))
    unit = space.shift_unit(int(space.starts[best]), int(space.stops[best]))
    left = r - unit * float(stat[best])
    noise = _second_shift(space, left, best, unit, threshold) or _noise(space, left)
    sigma, tau2 = float(noise[0]), float(noise[1])
    return best, sigma, tau2, float(_scaled(space, oriented, sigma, tau2).max())


def _second_shift(space: _Space, left: np.ndarray, best: int, unit: np.ndarray, threshold: float
                  ) -> tuple[float, float] | None:
    """``(sigma, tau^2)`` of the residuals two shifts leave, when the best shift in what the first left (``left``,
    the first's projected unit ``unit``) is itself beyond ``threshold`` over that noise; else None (module
    docstring, step 4). An incident that ended before another began is no normal variation: left in the residuals it
    widens their spread and, above all, the day-to-day variance of the days it covers, and the larger change masks
    the other (an outside test's rolled-back snapshot, calibration x2 for ten hours, hid a feature's lasting break).
    The second shift is the candidate apart from the first (no period in common: a shift inside or around the first
    is its shape, and taking it out moved three outside cases' onsets a period late) with the largest t fitted jointly
    with the first (Frisch-Waugh: its unit vector with the first's projected out), tested either way, an old
    improvement too, over the noise the two leave, whose day-to-day variance counts the days' deviations the two fits
    absorbed (:func:`_day_variance`'s ``taken``). ``best``: the first shift's candidate index."""
    stat = _stats(space, left)
    # each candidate's own share beside the first shift, 1 - (u . u_c)^2: its joint t is stat / sqrt(share); only
    # candidates apart from the first (another change, not the first's shape: a period the onset cut in two)
    share = np.maximum(1.0 - np.square(_stats(space, unit)), 0.0)
    first_start, first_stop = int(space.starts[best]), int(space.stops[best])
    apart = (space.stops <= first_start) | (space.starts >= first_stop)
    joint = np.where(apart & (share > 1e-9), np.abs(stat) / np.sqrt(np.maximum(share, 1e-9)), 0.0)
    second = int(np.argmax(joint))
    if joint[second] <= 0:  # no candidate apart from the first: nothing left to take out
        return None
    other = space.shift_unit(int(space.starts[second]), int(space.stops[second]))
    other = other - unit * float(unit @ other)
    own = float(other @ other)
    t = float(stat[second]) / math.sqrt(own)
    noise = _noise(space, left - other * (float(stat[second]) / own), np.column_stack([unit, other / math.sqrt(own)]))
    sigma, tau2 = float(noise[0]), float(noise[1])
    if abs(t) / math.sqrt(sigma**2 + tau2 * float(space.conc[second])) < threshold:
        return None
    return sigma, tau2


def _scaled(space: _Space, oriented: np.ndarray, sigma: np.ndarray | float, tau2: np.ndarray | float) -> np.ndarray:
    """Oriented statistics over their noise: ``sqrt(sigma^2 + tau^2 conc)`` per candidate (columns: draws)."""
    if oriented.ndim == 2:
        return oriented / np.sqrt(np.square(sigma)[None, :] + np.multiply.outer(space.conc, tau2))
    return oriented / np.sqrt(sigma**2 + tau2 * space.conc)


@lru_cache(maxsize=256)
def _null_maxima(weights: bytes, t_key: bytes, grain_hours: float, first_hour: float, direction: int, draws: int,
                 earlier: bytes = b"", first: int = 0) -> np.ndarray:
    """The best robust statistic of ``draws`` no-change Gaussian series with these weights (sorted), vectorized
    over draws: the best shift of every draw, its residuals, their MAD and day-to-day variance, then the best
    candidate over its noise, in one pass per chunk. ``earlier``, ``first``: as :func:`_space`'s (the columns'
    bytes, row-major)."""
    w, t = np.frombuffer(weights), np.frombuffer(t_key)
    terms = np.frombuffer(earlier).reshape(len(w), -1) if earlier else None
    space = _space(t, w, grain_hours, day=_days(t, first_hour, grain_hours), earlier=terms, first=first)
    rng = np.random.default_rng(20261202)
    out = np.empty(draws)
    chunk = max(1, min(draws, 4_000_000 // max(len(space.starts) + space.n, 1)))
    for lo in range(0, draws, chunk):
        z = rng.standard_normal((space.n, min(chunk, draws - lo)))
        r = space.project(z)
        stat = _stats(space, r)
        cols = np.arange(stat.shape[1])
        oriented = _orient(stat, direction)
        best = np.argmax(oriented, axis=0)
        signed = stat[best, cols]
        # the unit shift vectors of each draw's best candidate, projected: M s / ||M s||
        idx = np.arange(space.n)[:, None]
        s = np.where((idx >= space.starts[best]) & (idx < space.stops[best]), space.sw[:, None], 0.0)
        units = space.project(s) / space.norms[best]
        sigma, tau2 = _noise(space, r - units * signed)
        out[lo: lo + len(cols)] = _scaled(space, oriented, sigma, tau2).max(axis=0)
    return np.sort(out)


def _critical(maxima: np.ndarray, level: float) -> float:
    """The ``1 - level`` quantile of the null maximum from the draws: empirical where ten or more draws lie beyond
    it, else the tail above the draws' 90th percentile extrapolated as exponential (a generalized Pareto of shape
    0, fitted by its mean excess). The maximum of Gaussians has a lighter tail than that, so the extrapolation errs
    high: about 0.2 sigma on series of 30-300 periods against 40,000 draws, never low."""
    if level * len(maxima) >= 10:
        return float(np.quantile(maxima, 1 - level))
    u = float(np.quantile(maxima, 1 - TAIL))
    excess = maxima[maxima > u] - u
    if not len(excess):  # the top draws tie (a count series of a few clicks can reach only a few values): no tail
        return float(maxima[-1])
    return u + float(excess.mean()) * math.log(TAIL / level)


@dataclass(frozen=True)
class _Fit:
    """One metric's scan (indices into the usable periods ``rows`` of the table)."""

    metric: str
    rows: np.ndarray  # table rows of the usable periods
    space: _Space | None
    r: np.ndarray  # M y
    y: np.ndarray  # values (log for ratios), usable periods
    sigma: float
    tau2: float  # day-to-day variance beyond sampling error (metric units squared; 0 at daily grains)
    severity: float
    threshold: float
    best: int  # candidate index
    effect: float
    significant: bool
    level: float
    expected: np.ndarray  # the cycle-aware expectation without the shift or the level after it, per period (natural scale)
    se: float = math.nan  # the shift's standard error against the level before it (metric units; log for ratios)
    span: float = 0.0  # hours from the first usable period to the last (whether the design holds a weekly term)

    @property
    def tested(self) -> bool:
        return self.space is not None

    def profile(self, n_rows: int) -> np.ndarray:
        """Per table row: the best oriented robust statistic of a shift starting there (0 where none)."""
        out = np.zeros(n_rows)
        if self.space is None:
            return out
        np.maximum.at(out, self.rows[self.space.starts], self.fit(self.space))
        return out

    def fit(self, space: _Space) -> np.ndarray:
        """How well each of ``space``'s candidates fits, for locating the shift: its oriented statistic over the
        period-level spread ``sigma``. (Whether there is a shift at all is decided over the day-to-day variation
        too, :func:`_scaled`; where it starts and ends is a question of fit, which that variation does not change.)"""
        return _orient(_stats(space, self.r), DIRECTION[self.metric]) / self.sigma

    def statistic(self, start: int, stop: int) -> float:
        """The signed statistic of the shift on usable periods ``[start, stop)``."""
        assert self.space is not None
        pairs = (np.array([start]), np.array([stop]))
        sp = _space_for(self.space, pairs)
        return float(_stats(sp, self.r)[0])


def _space_for(space: _Space, pairs: tuple[np.ndarray, np.ndarray]) -> _Space:
    """The same projection with other candidate shifts."""
    starts, stops = pairs
    w = space.sw**2
    w_pre = np.concatenate([[0.0], np.cumsum(w)])
    g = np.concatenate([np.zeros((1, space.q.shape[1])), np.cumsum(space.q * space.sw[:, None], axis=0)])
    qs = g[stops] - g[starts]
    norm2 = (w_pre[stops] - w_pre[starts]) - (qs * qs).sum(axis=1)
    return _Space(space.sw, space.q, starts, stops, np.sqrt(np.maximum(norm2, 1e-12)), space.day,
                  _concentration(w, space.day, starts, stops), space.min_before)


@dataclass(frozen=True)
class _Sized:
    """A shift's size by weighted least squares (:func:`_size`)."""

    coef: np.ndarray  # the design's coefficients, then the shift's, then the level after's (when it ended)
    level: float  # the fitted level before the shift (its periods' weighted mean)
    shift: float  # the shift's coefficient: its move against that level
    moved: float | None  # the served predictions' own move over the same shift (calibration ratio), else None
    own: float  # ||s|| with the design and the level after projected out (weighted): its error is noise / own


def _size(x: np.ndarray, y: np.ndarray, sw: np.ndarray, start: int, stop: int, served: np.ndarray | None) -> _Sized:
    """The shift on usable periods ``[start, stop)`` beside the design ``x``, and the level after it as a term of its
    own when it ended: a regression is worse than what came before it, so a lasting improvement after it does not
    make the periods before that improvement a "regression that recovered". ``served``: the served predictions'
    own log series (calibration ratio), sized the same way."""
    n = len(y)
    k = x.shape[1]
    s = np.zeros(n)
    s[start:stop] = 1.0
    after = (np.arange(n) >= stop).astype(float)
    design = np.column_stack([x, s, after] if stop < n else [x, s]) * sw[:, None]
    coef, *_ = np.linalg.lstsq(design, y * sw, rcond=None)
    before = slice(0, max(start, 1))
    level = float(np.average((x @ coef[:k])[before], weights=np.square(sw[before])))
    moved = None
    if served is not None and np.isfinite(served).all():
        moved = float(np.linalg.lstsq(design, served * sw, rcond=None)[0][k])
    others = np.delete(design, k, axis=1)
    s_w = s * sw
    own = float(np.linalg.norm(s_w - others @ np.linalg.lstsq(others, s_w, rcond=None)[0]))
    return _Sized(coef, level, float(coef[k]), moved, own)


def _beside_a_line(metric: str, x: np.ndarray, y: np.ndarray, sw: np.ndarray, start: int, stop: int,
                   served: np.ndarray | None, t_hours: np.ndarray) -> bool:
    """Whether the shift on ``[start, stop)`` still worsens ``metric`` by the floor when a line through the log is
    fitted beside the design ``x`` (module docstring, step 5): where the design holds no weekly term, a slow curve
    (the part of the week a short log holds, a population drifting across it) can pass for a lasting shift. A step
    keeps its size beside a line, a drift does not. The worsening is :func:`worsening`'s, as for the shift without
    the line: for the calibration ratio a move away from 1, or the whole move when the served predictions made it;
    the level it starts from (and the floor's, for NE and AUC) is the line fit's own level before the shift."""
    line = _size(np.column_stack([x, t_hours / 168.0]), y, sw, start, stop, served)
    return worsening(metric, line.level, line.shift, line.moved) >= _floor(metric, line.level)


def _model_side(expected: np.ndarray) -> np.ndarray:
    """The clicks the model expects in each period (its labelled rows' predictions summed), floored at half a click as
    the clicks carry half a count: predictions that collapsed to 0 read as a bounded ratio, ``0.5 / (k + 1/2)``, not
    one that grows with the period's rows. Usable periods expect 5 clicks or show them (step 1), so only a collapse
    reaches the floor."""
    return np.maximum(expected, HALF_CLICK)


def _log_ratios(expected: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """Each period's log calibration ratio, ``log(expected / (clicks + 1/2))`` (module docstring, step 1): half a
    click keeps a period whose clicks collapsed to 0 and leaves the log nearly unbiased from 5 clicks a period on
    (Haldane 1955, Anscombe 1956); the model's side is a sum of predictions, which needs no such correction."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(_model_side(expected) / (positives + HALF_CLICK))


def _fit(table: pl.DataFrame, metric: str, end_row: int, level: float, draws: int, grain_hours: float,
         earlier: tuple[tuple[int, int], ...] = ()) -> _Fit:
    """One metric's scan. ``earlier``: table rows ``[start, stop)`` of regressions that ended before (step 8), each a
    term of the design, the candidates starting after the last of them."""
    raw = table[metric].cast(pl.Float64).fill_null(np.nan).to_numpy()
    labelled = table["labeled"].cast(pl.Float64).to_numpy()
    expected = table["pred_sum_labeled"].cast(pl.Float64).to_numpy()  # the positives the model expects
    observed = table["positives"].cast(pl.Float64).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "calibration_ratio":
            values = _log_ratios(expected, observed)
        else:
            values = np.log(raw) if metric in LOG_SCALE else raw
        weights = 1.0 / _sampling_se(table, metric) ** 2
    # usable periods by the larger of the expected and observed counts of each class: an incident on the labels
    # cannot censor the periods that show it, nor can predictions that collapsed
    positives, negatives = counted_classes(observed, expected, labelled)
    used = ((np.arange(table.height) < end_row) & np.isfinite(values) & np.isfinite(weights) & (weights > 0)
            & (positives >= MIN_FIT_COUNT) & (negatives >= MIN_FIT_COUNT))
    rows = np.flatnonzero(used)
    t_hours = ((table["window"] - table["window"][0]).dt.total_seconds() / 3600.0).to_numpy()
    n = len(rows)
    span = float(t_hours[rows][-1] - t_hours[rows][0]) if n else 0.0
    inside = [held for held in ((rows >= a) & (rows < b) for a, b in earlier) if held.any()]  # usable periods of each
    terms = np.column_stack(inside).astype(float) if inside else None
    first_start = int(np.searchsorted(rows, earlier[-1][1])) if earlier else 0
    if n < max(min_before(grain_hours), first_start) + MIN_LENGTH + 1:
        return _Fit(metric, rows, None, np.array([]), values[rows], math.nan, 0.0, 0.0, math.inf, 0, 0.0, False,
                    math.nan, np.full(table.height, np.nan), span=span)
    direction = DIRECTION[metric]
    first = table["window"][0]
    first_hour = first.hour + first.minute / 60 if isinstance(first, datetime) else 0.0
    space = _space(t_hours[rows], weights[rows], grain_hours, day=_days(t_hours[rows], first_hour, grain_hours),
                   earlier=terms, first=first_start)
    y = values[rows]
    r = space.project(y * space.sw)
    maxima = _null_maxima(weights[rows].tobytes(), t_hours[rows].tobytes(), grain_hours, first_hour, direction, draws,
                          np.ascontiguousarray(terms).tobytes() if terms is not None else b"", first_start)
    threshold = _critical(maxima, level)
    best, sigma, tau2, severity = _scan(space, r, direction, threshold)
    # the shift in metric units against the level before it, and the cycle-aware expectation without it
    start, stop = int(space.starts[best]), int(space.stops[best])
    x = _design(t_hours[rows], grain_hours)
    if terms is not None:
        x = np.column_stack([x, terms])
    served = None
    if metric == "calibration_ratio":  # the served predictions' own move over the same shift (worsening)
        with np.errstate(divide="ignore", invalid="ignore"):
            served = np.log(_model_side(expected[rows]) / labelled[rows])  # the ratio's model side
    sized = _size(x, y, space.sw, start, stop, served)
    effect = math.expm1(sized.shift) if metric in LOG_SCALE else sized.shift / abs(sized.level) if sized.level else math.inf
    # material with confidence: the worsening less MATERIAL_Z of its standard error still reaches the floor. The
    # error is the candidate's noise (sigma, and the day-to-day share of the scan's contrast) over ||s|| with the
    # cycle and the level after projected out: the least-squares error of the shift's coefficient (the day-to-day
    # share is the scan's contrast's, an approximation when the level after is a term of its own)
    noise_sd = math.sqrt(sigma**2 + tau2 * float(space.conc[best]))
    se_shift = noise_sd / sized.own if sized.own > 0 else math.inf
    material = _material_shift(metric, sized.level, sized.shift, se_shift, sized.moved)
    if material and not _weekly(grain_hours, span):
        material = _beside_a_line(metric, x, y, space.sw, start, stop, served, t_hours[rows])
    expected = np.full(table.height, np.nan)
    # the cycle alone: an earlier regression's term (step 8) is fitted beside it but is no part of what is expected, so
    # the plotted series shows that regression too
    design_all = _design(t_hours, grain_hours, span=span)
    cycle = design_all @ sized.coef[: design_all.shape[1]]
    expected[: len(cycle)] = np.exp(cycle) if metric in LOG_SCALE else cycle
    return _Fit(metric, rows, space, r, y, sigma, tau2, severity, threshold, best, effect,
                bool(severity >= threshold and material), sized.level, expected, se_shift, span)


def _floors(f: _Fit) -> float:
    """The effect of a fit in units of the metric's materiality floor (how many times material it is)."""
    return floors_of(f.metric, f.effect) if f.tested else 0.0


def floors_of(metric: str, effect: float) -> float:
    """A relative ``effect`` on ``metric`` in units of its materiality floor (step 6: what the headline ranks by)."""
    if not math.isfinite(effect):
        return 0.0
    if metric in LOG_SCALE:
        return abs(math.log1p(effect)) / MIN_EFFECT[metric] if effect > -1 else math.inf
    d = DIRECTION[metric]
    return (effect * d if d else abs(effect)) / MIN_EFFECT[metric]


# ---------------------------------------------------------------- onset, end, windows
def _joint_onset(fits: list[_Fit], n_rows: int) -> int:
    """The table row where the squared positive profiles of the regressed metrics peak together."""
    score = np.zeros(n_rows)
    for f in fits:
        score += np.maximum(f.profile(n_rows), 0.0) ** 2
    return int(np.argmax(score))


def _joint_fit(fits: list[_Fit], rows: np.ndarray, start: int, stops: np.ndarray, n: int) -> np.ndarray:
    """Per candidate end ``stops`` (indices into ``rows``, the headline's usable periods; ``n`` = to the end) of a
    shift from ``start``: the squared positive fits of the regressed metrics, summed, each on its own usable
    periods (one incident, one end, as one onset: a metric that is noisy where the incident ends, a night's few
    clicks, does not place it alone)."""
    score = np.zeros(len(stops))
    for f in fits:
        if f.space is None:
            continue
        first = int(np.searchsorted(f.rows, rows[start]))
        last = np.where(stops < n, np.searchsorted(f.rows, rows[np.minimum(stops, n - 1)], side="left"), f.space.n)
        ok = (last - first >= MIN_LENGTH) & (first >= f.space.min_before)
        if not ok.any():
            continue
        sp = _space_for(f.space, (np.full(int(ok.sum()), first), last[ok]))
        score[ok] += np.maximum(f.fit(sp), 0.0) ** 2
    return score


def _refine(fits: list[_Fit], head: _Fit, onset_row: int, level: float) -> tuple[int, int | None]:
    """Given the joint onset, the end (first table row after recovery, or None) and the onset refined given the end."""
    space = head.space
    assert space is not None
    rows = head.rows
    n = space.n
    start = int(np.searchsorted(rows, onset_row))
    start = min(max(start, space.min_before), n - MIN_LENGTH)
    d = DIRECTION[head.metric]
    stops = np.arange(start + MIN_LENGTH, n + 1)
    stop = int(stops[int(np.argmax(_joint_fit(fits, rows, start, stops, n)))])
    ended = False
    if stop <= n - MIN_AFTER_END:
        # the return: the level after the end against the shift, on the cycle-projected scale
        shift_sp = _space_for(space, (np.array([start]), np.array([stop])))
        after_sp = _space_for(space, (np.array([stop]), np.array([n])))
        shift, after = float(_stats(shift_sp, head.r)[0]), float(_stats(after_sp, head.r)[0])
        shift_unit, after_unit = shift_sp.norms[0], after_sp.norms[0]
        # estimated shifts (metric units x sqrt weight) of the two segments, and the z of their difference
        b_shift, b_after = shift / shift_unit, after / after_unit
        var = ((head.sigma**2 + head.tau2 * shift_sp.conc[0]) / shift_unit**2
               + (head.sigma**2 + head.tau2 * after_sp.conc[0]) / after_unit**2)
        z = (b_shift - b_after) / math.sqrt(var)
        z *= d if d else (1 if b_shift >= 0 else -1)
        remaining = b_after / b_shift if b_shift else 1.0
        ended = z >= NormalDist().inv_cdf(1 - level) and remaining < 0.5
    if not ended:
        stop = n
    # refine the onset given the end: the joint score of every start before it
    starts = np.arange(space.min_before, stop - MIN_LENGTH + 1)
    if len(starts):
        score = np.zeros(len(starts))
        for f in fits:
            if f.space is None:
                continue
            idx = np.searchsorted(f.rows, rows[starts])
            stop_f = np.searchsorted(f.rows, rows[stop - 1], side="right") if stop < n else f.space.n
            ok = (idx + MIN_LENGTH <= stop_f) & (idx >= f.space.min_before)
            if not ok.any():
                continue
            spf = _space_for(f.space, (idx[ok], np.full(int(ok.sum()), stop_f)))
            vals = np.zeros(len(starts))
            vals[ok] = np.maximum(f.fit(spf), 0.0) ** 2
            score += vals
        start = int(starts[int(np.argmax(score))])
    return int(rows[start]), (int(rows[stop]) if ended else None)


def _cycle(grain: str) -> timedelta:
    return timedelta(weeks=1) if grain_delta(grain) >= timedelta(days=1) else timedelta(days=1)


def _windows(onset: datetime | None, end: datetime, first: datetime, grain: str) -> tuple[Window, Window]:
    """Baseline and incident windows (see the module docstring)."""
    cycle, step = _cycle(grain), grain_delta(grain)
    if onset is None:
        inc_start = max(first + step, end - cycle)
        incident = Window(inc_start, max(end, inc_start + step))
        b_start = max(first, inc_start - cycle)
        return (Window(b_start, inc_start) if b_start < inc_start else incident), incident
    incident = Window(onset, max(end, onset + step))
    length = incident.duration
    if length <= cycle and onset - cycle >= first:
        return Window(onset - cycle, incident.end - cycle), incident
    cycles = math.ceil(length / cycle)
    b_start = max(first, onset - cycles * cycle)
    if b_start >= onset:
        return incident, incident
    return Window(b_start, onset), incident


def reliable_rows(series: pl.DataFrame) -> tuple[int, int]:
    """Index one past the last reliably labeled period of a quality table, and the number of trailing delayed periods
    (:func:`workbench.metrics.reliable_end` on its join rates)."""
    end = reliable_end(series["label_join_rate"].fill_null(0.0).to_numpy(), series["rows"].to_numpy())
    return end, series.height - end


PENDING_CYCLES = 14  # earlier cycles whose same hours give the untested periods' normal prediction mean
MIN_PENDING_CYCLES = 3  # fewer earlier cycles than this: no normal range to judge the prediction mean against


@dataclass(frozen=True, slots=True)
class PendingLabels:
    """The trailing periods still waiting for labels, which detection leaves out (:func:`reliable_rows`), and what can
    be said of them without labels: their prediction mean against the same span shifted back by whole cycles (days;
    weeks at a daily grain), up to ``PENDING_CYCLES`` of them that do not overlap it (the same hours, the same
    length: the predictions' own daily cycle cancels), as a robust z over the
    spread of those cycles (``1.4826 MAD``, floored at the sampling error): the served predictions move from day to
    day, so their sampling error alone is not their normal range. ``prediction_z`` is NaN with fewer than
    ``MIN_PENDING_CYCLES`` earlier cycles."""

    window: Window
    join_rate: float
    typical_join_rate: float
    cycles: int
    prediction_mean_before: float  # the median over the earlier cycles
    prediction_mean: float
    prediction_z: float

    @property
    def moved(self) -> bool:
        """The served predictions moved materially (5%) and beyond their normal range (robust z 3) in the untested
        periods: those hours deserve a look with the labels they have."""
        change = math.log(self.prediction_mean / self.prediction_mean_before) if self.prediction_mean_before > 0 else math.nan
        return bool(math.isfinite(change) and abs(change) >= math.log(1.05) and abs(self.prediction_z) >= 3)

    def to_dict(self) -> dict:
        return {"window": self.window.to_dict(), "join_rate": jsonable(self.join_rate),
                "typical_join_rate": jsonable(self.typical_join_rate), "cycles": self.cycles,
                "prediction_mean_before": jsonable(self.prediction_mean_before),
                "prediction_mean": jsonable(self.prediction_mean), "prediction_z": jsonable(self.prediction_z),
                "moved": self.moved}

    @property
    def headline(self) -> str:
        """Which hours were not tested, and why."""
        hours = self.window.duration / timedelta(hours=1)
        return (f"the latest {hours:.0f} h (from {self.window.start:%Y-%m-%d %H:%M} UTC) still wait for labels "
                f"({self.join_rate:.0%} joined, {self.typical_join_rate:.0%} usually) and are not tested yet")

    def __str__(self) -> str:
        head = self.headline
        if not math.isfinite(self.prediction_z):
            return head
        return (f"{head}; without labels, their prediction mean is {fmt(self.prediction_mean, 4)} against "
                f"{fmt(self.prediction_mean_before, 4)} in the same hours of {self.cycles} earlier cycles "
                f"(robust z {self.prediction_z:+.1f})")


def pending_labels(onset: Onset) -> PendingLabels | None:
    """The periods of ``onset``'s series still waiting for labels (None when there are none, or all are).

    Why: detection measures label metrics, so the trailing periods whose labels have not arrived are left out (their
    joined labels are a biased sample when late labels are more often clicks). A break in those hours is then not
    seen by the answer at all; saying which hours were left out, and whether the served predictions moved there
    beyond their day-to-day range, keeps "no regression" from covering hours nobody tested."""
    table = onset.series
    if not onset.testable or table.is_empty() or onset.grain is None:
        return None
    table = table.sort("window")
    end, delayed = reliable_rows(table)
    if delayed == 0 or end == 0:
        return None
    pending = Window(table["window"][end], table["window"][-1] + grain_delta(onset.grain))
    cycle = _cycle(onset.grain)
    first = table["window"][0]
    clear = math.ceil(pending.duration / cycle)  # the first whole-cycle shift that does not overlap the span itself
    earlier = [Window(pending.start - k * cycle, pending.end - k * cycle) for k in range(clear, clear + PENDING_CYCLES)]
    earlier = [w for w in earlier if w.start >= first]

    def mean(window: Window) -> tuple[float, float, float, float]:
        """The window's log prediction mean, its sampling error, its labelled rows and its rows."""
        rows = table.filter(window.contains("window"))
        sums = {c: np.array([float(rows[c].sum())]) for c in ("rows", "labeled", *POOL_SUMS)}
        value, se = metric_from_sums(sums, "prediction_mean")
        v = float(value[0])
        return (math.log(v) if v > 0 else math.nan), float(se[0]), float(sums["labeled"][0]), float(sums["rows"][0])

    now, se_now, labelled, rows = mean(pending)
    logs = np.array([m for m, *_ in map(mean, earlier)], dtype=float)
    logs = logs[np.isfinite(logs)]
    reliable = table.head(end)["label_join_rate"].fill_null(0.0).to_numpy()
    centre = float(np.median(logs)) if len(logs) else math.nan
    z = math.nan
    if len(logs) >= MIN_PENDING_CYCLES and math.isfinite(now):
        spread = max(MAD_TO_SD * float(np.median(np.abs(logs - centre))), se_now)
        z = (now - centre) / spread if spread > 0 else math.nan
    return PendingLabels(window=pending, join_rate=labelled / rows if rows else math.nan,
                         typical_join_rate=float(np.median(reliable)), cycles=len(logs),
                         prediction_mean_before=math.exp(centre) if math.isfinite(centre) else math.nan,
                         prediction_mean=math.exp(now) if math.isfinite(now) else math.nan, prediction_z=z)


def _as_series(case_or_series: Case | QualitySeries, grain: str | None,
               scan: LogScan | None = None) -> tuple[QualitySeries | None, GrainChoice | None]:
    if isinstance(case_or_series, QualitySeries):
        s = case_or_series
        if s.by:
            raise WorkbenchError("detect_onset", f"the series is split by {list(s.by)}; onset needs one row per period.",
                                 "pass quality_series(case) without by=, or filter rows with rows=.")
        return s, None
    case = case_or_series
    choice = case.grain if grain is None else case.grain if grain == case.grain.grain else None
    if choice is None:
        from workbench.case.grain import choose_grain

        choice = choose_grain(case.profile, grain)
    if not choice.testable:
        return None, choice
    assert choice.grain is not None
    return quality_series(case, every=choice.grain, scan=scan), choice


def _untestable(case: Case, choice: GrainChoice, metrics: tuple[str, ...]) -> Onset:
    """Nothing tested; the windows the views compare by default are the last week and the week before, or the two
    halves of a log shorter than two weeks (a baseline equal to the incident would show every difference as 0)."""
    end = case.end
    length = min(timedelta(days=7), (end - case.start) / 2)
    incident = Window(end - length, end)
    baseline = Window(max(case.start, incident.start - length), incident.start)
    verdicts = tuple(MetricVerdict(m, math.nan, math.nan, False, tested=False) for m in metrics)
    return Onset(detected=False, metric=metrics[0], onset=None, baseline_value=math.nan, current_value=math.nan,
                 severity=math.nan, effect=math.nan, threshold=math.nan, baseline=baseline, incident=incident,
                 label_delay_hours=0, series=pl.DataFrame(), method="", grain=None, metrics=verdicts, testable=False,
                 reason=choice.reason)


def detect_onset(case_or_series: Case | QualitySeries, metrics: tuple[str, ...] | str = WATCHED, *, alpha: float = 0.001,
                 grain: str | None = None, null_draws: int = NULL_DRAWS, scan: LogScan | None = None,
                 latest: bool = True, mix: bool = True, scheduler: object = None, slices_from: Case | None = None
                 ) -> Onset:
    """Decide whether prediction quality regressed beyond its normal variation; onset, end and the metric that
    regressed most (see the module docstring for the method and its family-wise false-alarm rate ``alpha``).

    ``case_or_series`` is a case (its grain is chosen from its profile unless ``grain``
    is given) or a :class:`~workbench.data.quality.QualitySeries` of one row per period. ``scan``
    (:func:`workbench.data.scan.log_scan`) gives a case's series without reading the log. ``latest``: when the
    regression found ended, look for a later one after it (step 8); False answers with the largest. ``mix``: read a
    case's regressed NE and calibration at the baseline's mix of each slice column (step 5; one grouped pass over the two
    windows, on the Dask cluster of ``scheduler`` when given); a series is read on the slice columns of
    ``slices_from``, the case whose rows it holds (``workbench guard``'s series of the rows before its window's end).

    >>> from workbench import open_case
    >>> detect_onset(open_case("sample_data/cases/control")).detected
    False
    >>> found = detect_onset(open_case("sample_data/cases/calibration_shift"))
    >>> found.detected, found.grain, found.onset.isoformat()
    (True, '1h', '2026-11-20T02:00:00+00:00')
    """
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    for name in names:
        if name not in DIRECTION:
            raise WorkbenchError("detect_onset", f"unknown metric '{name}'.", f"use one of {list(DIRECTION)}.")
    series, choice = _as_series(case_or_series, grain, scan)
    if series is None:
        assert choice is not None and isinstance(case_or_series, Case)
        return _untestable(case_or_series, choice, names)
    source = case_or_series if isinstance(case_or_series, Case) else slices_from
    read = _mix_reader(source, scheduler) if mix and source is not None else None
    return _detect(series, choice, names, alpha, null_draws, latest, read=read)


def _mix_reader(case: Case, scheduler: object) -> MixRead | None:
    """The mix readings of two windows of ``case`` (:func:`workbench.data.mix.mix_readings`), None without slice columns."""
    columns = tuple(case.slices)
    if not columns:
        return None

    def read(baseline: Window, incident: Window, metrics: tuple[str, ...]) -> list[MixReading]:
        if not any(m in STANDARDIZED for m in metrics) or baseline.overlaps(incident):
            return []
        cells = window_cells(case, baseline, incident, columns, scheduler=scheduler)
        return mix_readings(cells, columns, metrics, baseline, incident)

    return read


def _floors_between(reading: MixReading, before: str, after: str) -> float:
    """A reading's worsening from side ``before`` to side ``after`` in units of the materiality floor (material: at
    least 1, as :func:`material` judges a window's move; the served predictions' own move from the same sides' sums)."""
    move = _level_shift(reading.metric, reading.values[before], reading.values[after])
    if move is None:
        return math.nan
    x, y = reading.sums[before], reading.sums[after]
    moved = float(served_move(x["pred_sum_labeled"], x["labeled"], y["pred_sum_labeled"], y["labeled"]))
    return worsening(reading.metric, *move, moved) / _floor(reading.metric, move[0])


def _carried_by_mix(metrics: list[str], read: MixRead, baseline: Window, incident: Window) -> dict[str, MixReading]:
    """The metrics among ``metrics`` whose move between the windows the traffic mix carries (module docstring, step 5;
    :func:`workbench.data.mix.carried` with the materiality floor), each with the slice column that leaves least of it."""
    out: dict[str, MixReading] = {}
    for r in read(baseline, incident, tuple(metrics)):
        if carried(r, _floors_between) and (r.metric not in out or _floors_between(r, "baseline", "within")
                                            < _floors_between(out[r.metric], "baseline", "within")):
            out[r.metric] = r
    return out


def _detect(series: QualitySeries, choice: GrainChoice | None, names: tuple[str, ...], alpha: float, null_draws: int,
            latest: bool, earlier: tuple[Onset, ...] = (), read: MixRead | None = None) -> Onset:
    """:func:`detect_onset` on a series; ``earlier``: regressions that ended before, oldest first (:func:`_latest`);
    ``read``: a case's mix readings (:func:`_mix_reader`)."""
    table = series.table.sort("window")
    if table.is_empty():
        raise WorkbenchError("detect_onset", "the quality series is empty.", "open a case with at least one labelled row.")
    every = series.every
    step = grain_delta(every) if every in ("15m", "1h", "6h", "1d", "1w") else \
        (table["window"][1] - table["window"][0] if table.height > 1 else timedelta(hours=1))
    grain_name = every if every in ("15m", "1h", "6h", "1d", "1w") else "1h"
    label_end, delayed = reliable_rows(table)
    level = alpha / len(names)
    windows = table["window"]
    spans = tuple((int(windows.search_sorted(e.onset)), int(windows.search_sorted(e.end))) for e in earlier
                  if e.onset is not None and e.end is not None)
    fits = [_fit(table, m, label_end, level, null_draws, step / timedelta(hours=1), spans) for m in names]
    hits = [f for f in fits if f.significant]
    first = table["window"][0]
    last_end = table["window"][max(label_end - 1, 0)] + step
    mixed: dict[str, MixReading] = {}
    while True:  # the fit's shift is material; the windows the answer reports must show it too, or the metric drops
        head = max(hits, key=_floors) if hits else next((f for f in fits if f.tested), fits[0])
        onset_time: datetime | None = None
        end_time: datetime | None = None
        if hits:
            row = _joint_onset(hits, table.height)
            row, end_row = _refine(hits, head, row, level)
            onset_time = table["window"][row]
            end_time = table["window"][end_row] if end_row is not None else None
        baseline, incident = _windows(onset_time, end_time or last_end, first, grain_name)
        if earlier:
            baseline = _clear_of(baseline, earlier[-1], incident)
        baseline = _with_labels(baseline, incident, table)
        tb, ti = table.filter(baseline.contains("window")), table.filter(incident.contains("window"))
        moved = prediction_move(tb, ti)
        kept = [f for f in hits if material(f.metric, pool(tb, f.metric), pool(ti, f.metric), moved=moved)]
        if read is not None and kept:
            carried = _carried_by_mix([f.metric for f in kept], read, baseline, incident)
            mixed |= carried
            kept = [f for f in kept if f.metric not in carried]
        if len(kept) == len(hits):
            break
        hits = kept
    significant = {f.metric for f in hits}
    verdicts = tuple(MetricVerdict(
        f.metric, pool(tb, f.metric), pool(ti, f.metric), f.metric in significant, f.severity, f.threshold, f.effect,
        _floors(f), onset_time if f.metric in significant else None, end_time if f.metric in significant else None,
        f.tested, f.sigma, math.sqrt(f.tau2), _start(f, table["window"])) for f in fits)
    values = np.full(table.height, np.nan)
    z = np.full(table.height, np.nan)
    used = np.zeros(table.height, dtype=bool)
    if head.tested:
        values[head.rows] = np.exp(head.y) if head.metric in LOG_SCALE else head.y
        used[head.rows] = True
        assert head.space is not None
        expected = head.expected[head.rows]
        z[head.rows] = (head.y - (np.log(expected) if head.metric in LOG_SCALE else expected)) * head.space.sw / head.sigma
    table = table.with_columns(pl.Series("value", values).fill_nan(None), pl.Series("expected", head.expected).fill_nan(None),
                               pl.Series("z", z).fill_nan(None), pl.Series("used", used))
    method = (f"{', '.join(names)} per {grain_name}: WLS level + daily/weekly harmonics, weighted by each period's sampling "
              f"error; a shift on [onset, end) scanned over onsets and a ladder of lengths; robust z (MAD, floored at "
              f"sampling error, plus the day-to-day variance below a daily grain) vs the tail-extrapolated "
              f"{1 - level:.3%} quantile of its null maximum ({null_draws} draws); "
              f"family-wise alpha {alpha} over {len(names)} metric(s) (Bonferroni); materiality "
              + ", ".join(f"{m} {_floor_words(m)}" for m in names)
              + ("" if _weekly(step / timedelta(hours=1), head.span) else
                 "; and, with no weekly term in the design, the shift's worsening, by its estimate, beside a line through the log")
              + ("" if read is None else "; an NE or calibration move the traffic mix carries (not material at the "
                                         "baseline's mix of a slice column's values) is not a regression"))
    found = Onset(
        detected=bool(hits), metric=head.metric, onset=onset_time, baseline_value=pool(tb, head.metric),
        current_value=pool(ti, head.metric), severity=head.severity, effect=head.effect, threshold=head.threshold,
        baseline=baseline, incident=incident, label_delay_hours=round(delayed * (step / timedelta(hours=1))), series=table,
        method=method, end=end_time, grain=grain_name, metrics=verdicts,
        reason=choice.reason if choice is not None else "", mix=tuple(mixed.values()))
    return _latest(found, series, names, alpha, null_draws, earlier, read) if latest else found


def _with_labels(baseline: Window, incident: Window, table: pl.DataFrame) -> Window:
    """``baseline``, or, when it holds no labelled row, the periods with labelled rows just before the incident, as
    many as it holds (module docstring, *Windows*): the same hours a day before can fall in an outage (serving or the
    label join stopped), and a regression then dropped for want of a level to compare with (a calibration fall of 47 %
    read "no regression")."""
    def labelled(window: Window) -> pl.DataFrame:
        return table.filter(window.contains("window") & (pl.col("labeled") > 0))

    before = table.filter((pl.col("window") < incident.start) & (pl.col("labeled") > 0))
    if baseline == incident or before.is_empty() or not labelled(baseline).is_empty():
        return baseline
    return Window(before["window"][max(before.height - max(labelled(incident).height, 1), 0)], incident.start)


def _clear_of(baseline: Window, before: Onset, incident: Window) -> Window:
    """``baseline`` without the regression ``before`` that ended before ``incident`` began (step 8): its part after
    that end, else its part before that onset, else the periods between that end and the incident; as it was when it
    does not overlap, or when nothing is left (an incident that began as the other ended, on a baseline inside it)."""
    if before.onset is None or before.end is None or not baseline.overlaps(Window(before.onset, before.end)):
        return baseline
    if max(baseline.start, before.end) < baseline.end:
        return Window(max(baseline.start, before.end), baseline.end)
    if baseline.start < before.onset:
        return Window(baseline.start, min(baseline.end, before.onset))
    return Window(before.end, incident.start) if before.end < incident.start else baseline


def _latest(found: Onset, series: QualitySeries, names: tuple[str, ...], alpha: float, null_draws: int,
            earlier: tuple[Onset, ...], read: MixRead | None = None) -> Onset:
    """The latest regression (module docstring, step 8): when the one found ended, the log is scanned again for a
    regression that starts after its end, the one found a term of the design (its periods' indicator, fitted beside
    the cycle), and a regression found there is the answer, the one found its ``earlier``. An on-call engineer asks why
    quality is bad now; a snapshot rolled back days ago, however large its effect, is history (an outside test:
    calibration x2 for ten hours, rolled back; four days later a feature's lasting break, named as the snapshot). The
    second scan is a test of its own at the same level, its null drawn with the same design and candidates; the cycle
    and the noise are the whole log's (a scan of the periods after the end alone fitted no daily cycle on a tail
    under two days and took a day's hours for a regression: dev feature/stale_constant/2), and its baseline lies after
    the earlier end."""
    if not found.detected or found.end is None:
        return found
    later = _detect(series, None, names, alpha, null_draws, True, (*earlier, found), read)
    if not later.detected:
        return found
    return replace(later, reason=found.reason, earlier=later.earlier if later.earlier is not None else found,
                   method=f"{later.method}; the latest regression: scanned after an earlier one that ended "
                          f"({iso(found.end)}), that one a term of the design")


def _start(f: _Fit, windows: pl.Series) -> datetime | None:
    """The period where ``f``'s best shift starts (None when nothing was scanned)."""
    if f.space is None or not len(f.rows):
        return None
    start = windows[int(f.rows[int(f.space.starts[f.best])])]
    return start if isinstance(start, datetime) else None


def _floor_words(metric: str) -> str:
    if metric in LOG_SCALE:
        return (f"x{math.exp(MIN_EFFECT[metric]):.2f} further from 1 (or moved across it by the predictions)"
                if not DIRECTION[metric] else f"x{math.exp(MIN_EFFECT[metric]):.2f}")
    return f"{MIN_EFFECT[metric]:.0%}"


def retimed(case: Case, found: Onset, timing: Onset, where: str) -> Onset | None:
    """``found`` (a detected regression) with the onset, end and windows of ``timing`` (the same regression located on
    a series where it is not diluted: :func:`workbench.data.segments.locate_in_segment`), every metric's values pooled
    over those windows; None when the headline metric's change between them is not material in its direction.

    Only when and where: which metrics regressed, and how far beyond their normal variation, stay ``found``'s.
    """
    parts = [quality_between(case, w) for w in (timing.baseline, timing.incident)]
    verdicts = tuple(replace(v, baseline=pool(parts[0], v.metric) if parts[0].height else math.nan,
                             current=pool(parts[1], v.metric) if parts[1].height else math.nan,
                             onset=timing.onset if v.regressed else None, end=timing.end if v.regressed else None)
                     for v in found.metrics)
    head = next(v for v in verdicts if v.metric == found.metric)
    if not material(head.metric, head.baseline, head.current, moved=prediction_move(*parts)):
        return None
    return replace(found, onset=timing.onset, end=timing.end, baseline=timing.baseline, incident=timing.incident,
                   baseline_value=head.baseline, current_value=head.current, metrics=verdicts,
                   method=f"{found.method}; onset and end located on {where}'s own series, which holds the regression "
                          f"alone (per {timing.grain})")


def measure_windows(case: Case, baseline: Window, incident: Window, detected: Onset | None = None,
            metrics: tuple[str, ...] = WATCHED, *, alpha: float = 0.001) -> Onset:
    """Every watched metric between two given windows (the user's ``--baseline``/``--incident``), with the headline.

    A metric regressed when its change between the windows is material (by the lower
    bound of step 5 in the module docstring) and beyond
    ``z_(1 - alpha/m)`` of its sampling error scaled by the over-dispersion the
    detector measured on the whole series (``detected``, when given), plus the
    day-to-day variation it measured, averaged over each window's days. The onset is
    the incident's start; the end is None: the user chose where the window stops, and nothing here says that quality
    recovered there (a window that stopped before the data did read "until 10:00 (recovered)" of a break that lasted).
    """
    parts = {name: quality_between(case, w) for name, w in (("b", baseline), ("i", incident))}
    crit = NormalDist().inv_cdf(1 - alpha / len(metrics))
    moved = prediction_move(parts["b"], parts["i"])
    verdicts = []
    for m in metrics:
        b, i = (pool(parts[k], m) if parts[k].height else math.nan for k in ("b", "i"))
        se_b, se_i = (float(_sampling_se(parts[k], m)[0]) if parts[k].height else math.nan for k in ("b", "i"))
        fitted = detected.verdict(m) if detected is not None else None
        over = fitted.sigma if fitted is not None and math.isfinite(fitted.sigma) else 1.0
        day_var = fitted.day_sd**2 * sum(1 / max(w.duration / timedelta(days=1), 1.0) for w in (baseline, incident)) \
            if fitted is not None else 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            delta = (math.log(i / b) if m in LOG_SCALE and b > 0 and i > 0 else i - b)
        se = math.sqrt((se_b**2 + se_i**2) * over**2 + day_var) if math.isfinite(se_b) and math.isfinite(se_i) else math.nan
        d = DIRECTION[m]
        oriented = delta * d if d else abs(delta)
        regressed = bool(math.isfinite(se) and se > 0 and oriented / se >= crit and material(m, b, i, se, moved))
        effect = math.expm1(delta) if m in LOG_SCALE else (delta / abs(b) if b else math.nan)
        floors = (abs(delta) if m in LOG_SCALE else (oriented / abs(b) if b else 0.0)) / MIN_EFFECT[m]
        verdicts.append(MetricVerdict(m, b, i, regressed, oriented / se if se else math.nan, crit, effect, floors,
                                      incident.start if regressed else None, None))
    hits = [v for v in verdicts if v.regressed]
    head = max(hits, key=lambda v: v.floors) if hits else verdicts[0]
    series = detected.series if detected is not None else pl.DataFrame()
    return Onset(detected=bool(hits), metric=head.metric, onset=incident.start, baseline_value=head.baseline,
                 current_value=head.current, severity=head.severity, effect=head.effect, threshold=head.threshold,
                 baseline=baseline, incident=incident,
                 label_delay_hours=detected.label_delay_hours if detected is not None else 0, series=series,
                 method=f"given windows: change of each metric against z_(1 - {alpha}/{len(metrics)}) of its sampling error",
                 end=None, grain=detected.grain if detected is not None else None, metrics=tuple(verdicts),
                 testable=True, forced=True)
