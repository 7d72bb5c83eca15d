"""Simulate a mitigation on the incident window: the quality the served rows would have had after the action.

Every simulation works on one uniform sample of the incident window's labelled rows
(``SAMPLE`` rows, sorted by time) and is *paired*: the logged quality and the simulated
quality are measured on the same rows, so their difference is the action's, not the
sampling noise between two windows. What each action changes:

* :meth:`Simulator.rollback` — every row re-scored with another snapshot instead of the one
  that served it (:func:`last_good_snapshot` picks one that is in fact good).
* :meth:`Simulator.fallback` — some features served differently until they are fixed, the rows
  re-scored with the snapshot that served them (the swap of :mod:`workbench.model.isolation`):
  null (``default``: the model sees its fill value 0.0), the baseline median (``median``), or the
  values of a random baseline row of the same slice cell (``baseline``, one row for all the
  features, so their joint distribution holds). The best of the three is picked on the rows of
  even hours and scored on those of odd hours.
* :meth:`Simulator.backfill` — the features restored to their baseline behaviour. A change of
  scale by a measured factor is divided out and the rows re-scored. Any other break lost values
  that a backfill brings back and no simulation can know, so the break is reproduced on the
  baseline rows, whose true values are known, and the loss it adds there is taken off the
  incident (at most down to the baseline's level: the damage was measured on other rows).
* :meth:`Simulator.recalibrate` — a correction of the logged logit fitted on the labelled
  incident rows served in *even hours* and scored on those of *odd hours*, and the reverse, so
  the prediction is out of sample and stands on every row (alternate hours rather than halves: a
  drift inside the window, or an onset an hour or two off, does not become a split between
  before and after). The action proposed is the fit on all the rows. A part counts its clicks as
  observed or, when more, as the served predictions expect, so a segment whose clicks collapsed
  keeps the rows that show it (when one half cannot be fitted, the other fits and this one scores).
  Two corrections are fitted by maximum likelihood: an odds
  ratio (``z + ln factor``) and Platt's logit-scale map (``factor * z + offset``; Platt 1999);
  the second is used only when a likelihood-ratio test prefers it (chi-square, 1 df,
  ``LRT`` = the 0.001 quantile), so one extra parameter is never spent on noise, and each
  half holds ``MIN_EVENTS`` observed clicks and non-clicks. It is fitted
  and scored on the refit's larger sample (a ratio of clicks is known to the clicks' count). With
  ``within="column=value"`` the correction is fitted on a sample of that segment's own rows
  and applied inside it only.
* :meth:`Simulator.refit` — for a population shift: the next refresh trained on the new
  population, stood in for by a gradient-boosted model of the label from the served logit and
  the features, fitted on the labelled incident rows of even hours and scored on those of odd
  hours. With the served logit among its inputs, it learns what the model now gets wrong (a
  region of inputs it rarely saw, an interaction the new mix exposes) and keeps what it gets
  right; on few labelled rows it learns little, and the prediction says so. It draws its own,
  larger sample (``REFIT_SAMPLE`` rows): a model learns from the count of rows, where a paired
  difference is already precise on ``SAMPLE``.
* :meth:`Simulator.relabel` — for a label incident: the served predictions scored against
  labels as the baseline's calibration says they should be (each prediction times its
  prediction bin's baseline ratio of label rate to mean prediction, ``BINS`` quantile bins):
  what the window reads once its labels are joined correctly. The labels, not the model,
  are assumed to have changed, which is what the label check found.

**The serving path stays.** A row's simulated logit is its logged logit plus the change the
action makes to the model's output, ``z_logged + f'(x') - f(x)``: a serving-side transform
(a calibration layer) is not silently removed by re-scoring. Where the serving snapshot's own
output is not finite (a NaN tensor: serving fell back to a constant) the re-scored output is
used as it is.

**Recovery** is the share of the regression the action removes on the headline metric, against
the logged quality of the baseline window's labelled rows: for NE and log loss (lower is
better) ``(incident - after) / (incident - baseline)``; for AUC ``(after - incident) /
(baseline - incident)``; for the calibration ratio, whose regression is a move away from 1
(:func:`workbench.data.onset.worsening`), the share of that move removed:
``(|ln incident| - |ln after|) / (|ln incident| - |ln baseline|)``. A recalibration that lands
on the label rate recovers all of it even when the baseline itself was off (1.24 -> 1.6, back
to 1.0: 184%; measured as the way back to 1.24 it scored 16%); overshooting past 1 counts against
it. A move across 1 that the served predictions made is a regression of its whole size, as the
detector counts it; the share removed is then that of the move from the baseline, while the action
leaves the ratio no closer to 1 than the baseline was. Above 1 the window would be better than the baseline. It is a prediction: the
rows were served once, and the simulation says what the model would have made of them.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from workbench.case.columns import LABEL, PREDICTION, SNAPSHOT, TS
from workbench.data.onset import served_move, worsening
from workbench.errors import CaseError
from workbench.metrics import (
    auc,
    base_rate_entropy,
    calibration_ratio,
    counted_classes,
    fit_offset,
    log_loss,
    logit,
    normalized_entropy,
    row_log_loss,
    row_log_loss_logit,
    sigmoid,
)
from workbench.model._shared import fmt
from workbench.model.isolation import (
    WINDOW_VALUES,
    _cells,
    _grouped,
    _model_logit,
    _raw,
    _resample_within,
    _serving,
    rows_per_window,
)
from workbench.model.rescore import LABEL_EVENTS, SUPPORT_NULLS, label_classifier, varying
from workbench.model.validation import sample_rows

if TYPE_CHECKING:
    from datetime import datetime

    from workbench.case.loader import Case
    from workbench.data.scan import LogScan
    from workbench.model.validation import Validation
    from workbench.windows import Window

__all__ = ["HOWS", "METRICS", "Break", "NotSimulated", "Simulation", "Simulator", "last_good_snapshot", "quality", "recovery"]

STAND_IN_R2 = 0.8  # held-out R^2 a model-free surrogate needs to re-score feature actions (see Simulator.rescore_problem)
SAMPLE = 20_000  # labelled rows per window; paired differences on this many rows are precise to ~0.002 NE
REFIT_SAMPLE = 100_000  # labelled incident rows a refit stands on (at most WINDOW_VALUES values): a model learns from rows
MIN_LABELED = 200  # labelled rows a fitted or measured part needs: a 1-2 parameter fit and a paired difference need few
MIN_EVENTS = 10  # rows of each class a part needs (ten events per fitted parameter; Peduzzi et al. 1996)
LRT = 10.828  # chi-square(1) quantile at 0.999: the logit-scale recalibration must beat the odds ratio by this
BINS = 20  # prediction bins of the baseline calibration (relabel)
METRICS = ("normalized_entropy", "calibration_ratio", "auc", "log_loss")
WATCHED = ("normalized_entropy", "calibration_ratio", "auc")
HOWS = ("default", "median", "baseline")  # fallback serving choices
SERVED = {"default": "null (the model's fill value)", "median": "their baseline median",
          "baseline": "values of baseline rows of the same slice cell"}
NAMES = {"normalized_entropy": "NE", "calibration_ratio": "the calibration ratio", "auc": "AUC", "log_loss": "log loss"}


# ---------------------------------------------------------------- the statistics
def quality(metric: str, p: np.ndarray, y: np.ndarray) -> float:
    """``metric`` of predictions ``p`` against 0/1 labels ``y`` (the definitions of :mod:`workbench.metrics`)."""
    if metric == "normalized_entropy":
        return normalized_entropy(p, y)
    if metric == "calibration_ratio":
        return calibration_ratio(p, y)
    if metric == "auc":
        return auc(p, y)
    if metric == "log_loss":
        return log_loss(p, y)
    raise ValueError(f"unknown metric {metric!r}; use one of {METRICS}")


def _soft_quality(metric: str, p: np.ndarray, r: np.ndarray) -> float:
    """The expected ``metric`` when each row's label is Bernoulli(``r``): the same definitions with soft labels."""
    q = np.clip(p, 1e-7, 1 - 1e-7)
    loss = float(np.mean(-(r * np.log(q) + (1 - r) * np.log(1 - q))))
    if metric == "log_loss":
        return loss
    if metric == "normalized_entropy":
        return loss / base_rate_entropy(float(r.mean()))
    if metric == "calibration_ratio":
        return float(p.sum() / r.sum()) if r.sum() > 0 else math.nan
    order = np.argsort(p, kind="stable")  # AUC: positive mass times the negative mass ranked below it, ties half
    ps, neg = p[order], 1 - r[order]
    cum = np.concatenate([[0.0], np.cumsum(neg)])
    lo, hi = np.searchsorted(ps, ps, "left"), np.searchsorted(ps, ps, "right")
    below = cum[lo] + 0.5 * (cum[hi] - cum[lo] - neg)
    pos = r[order]
    return float((pos * below).sum() / (pos.sum() * neg.sum())) if pos.sum() > 0 and neg.sum() > 0 else math.nan


def recovery(metric: str, baseline: float, incident: float, after: float, moved: float | None = None) -> float:
    """The share of the regression from ``baseline`` to ``incident`` that ``after`` removes (see the module docstring);
    NaN when the metric did not regress. ``moved``: the served predictions' own log move from the baseline to the
    incident, which makes a calibration ratio's move across 1 a regression of its whole size
    (:func:`workbench.data.onset.worsening`); an action changes the predictions alone, so after it their move is
    ``moved`` plus the ratio's own change from the incident.

    >>> round(recovery("normalized_entropy", 0.80, 0.90, 0.82), 3), round(recovery("auc", 0.80, 0.70, 0.75), 3)
    (0.8, 0.5)
    """
    if not all(math.isfinite(v) for v in (baseline, incident, after)):
        return math.nan
    if metric == "calibration_ratio":  # worse = further from 1, as the detector judges it
        if min(baseline, incident, after) <= 0:
            return math.nan
        level = math.log(baseline)
        worse = worsening(metric, level, math.log(incident) - level, moved)
        left = moved + math.log(after / incident) if moved is not None and math.isfinite(moved) else None
        return 1.0 - worsening(metric, level, math.log(after) - level, left) / worse if worse > 1e-9 else math.nan
    sign = -1.0 if metric == "auc" else 1.0
    regression = (incident - baseline) * sign
    return (incident - after) * sign / regression if regression > 1e-12 else math.nan


# ---------------------------------------------------------------- results
@dataclass(frozen=True, slots=True)
class Simulation:
    """The simulated quality on the incident window after one action: a prediction, paired on the same rows.

    ``incident`` is the logged value of ``metric`` on the rows the action was scored on,
    ``value`` the simulated one, ``baseline`` the baseline window's logged value and
    ``recovery`` the share of the regression removed (:func:`recovery`). ``after`` holds every
    watched metric after the action; ``parameters`` what was fitted (a recalibration's
    ``factor`` and ``offset``); ``method`` one sentence on how it was simulated.
    """

    action: str
    target: str
    metric: str
    baseline: float
    incident: float
    value: float
    recovery: float
    rows: int
    method: str
    after: tuple[tuple[str, float], ...] = ()
    parameters: tuple[tuple[str, float], ...] = ()

    def to_dict(self) -> dict:
        """The contract's ``predicted`` object (``metric``, ``value``, ``recovery``) with the numbers behind it."""
        return {"metric": self.metric, "value": _round(self.value), "recovery": _round(self.recovery),
                "baseline": _round(self.baseline), "incident": _round(self.incident), "rows": self.rows,
                "after": {m: _round(v) for m, v in self.after}, "method": self.method}

    def sentence(self) -> str:
        """``NE from 0.874 to 0.815, 94% of the regression (predicted)``."""
        share = f"{self.recovery:.0%} of the regression" if math.isfinite(self.recovery) else "no measurable regression to recover"
        return (f"{NAMES.get(self.metric, self.metric)} from {fmt(self.incident, '.3f')} to {fmt(self.value, '.3f')}, {share} "
                f"(predicted on {self.rows:,} labelled incident rows; baseline {fmt(self.baseline, '.3f')})")

    def __str__(self) -> str:
        return f"{self.action} {self.target}: {self.sentence()}"


@dataclass(frozen=True, slots=True)
class NotSimulated:
    """Why an action could not be simulated (no model, too few labelled rows, ...)."""

    reason: str

    def to_dict(self) -> dict:
        return {"reason": self.reason}

    def __str__(self) -> str:
        return f"not simulated: {self.reason}"


@dataclass(frozen=True, slots=True)
class Break:
    """How a feature broke, as the drift check measured it (``kind``: coverage, scale, stale, ...)."""

    kind: str
    scale_ratio: float | None = None  # typical magnitude after / before
    coverage_lost: float | None = None  # share of the values that were present and are lost


def _round(v: float) -> float | None:
    return round(float(v), 4) if v is not None and math.isfinite(v) else None


# ---------------------------------------------------------------- the rows
@dataclass(frozen=True, slots=True)
class _Rows:
    frame: pl.DataFrame  # sorted by time
    x: np.ndarray  # raw features, NaN = null
    y: np.ndarray
    p: np.ndarray  # logged prediction

    @property
    def z(self) -> np.ndarray:
        return logit(self.p)

    @property
    def fit_part(self) -> np.ndarray:
        """Rows served in even hours (fit on these, score on the others): an out-of-sample split that a drift inside
        the window, or an onset placed an hour or two off, does not turn into a split between before and after."""
        hours = self.frame[TS].dt.epoch("s").to_numpy() // 3600
        return hours % 2 == 0

    def enough(self, mask: np.ndarray | None = None, counted: bool = False) -> bool:
        """``MIN_LABELED`` rows with ``MIN_EVENTS`` observed of each class. ``counted``: each class counted as observed
        or, when more, as the served predictions expect (:func:`workbench.metrics.counted_classes`), with at least
        one observed, for a recalibration: a segment whose clicks collapsed must not lose, for want of clicks, the rows
        that show the collapse and fit its fix (dev slice/collapse/1: 4,580 rows expecting tens of clicks and getting a
        handful read "too few"). Not for the other actions: predictions a bad snapshot inflated are what a rollback
        removes, not evidence to measure it on, and a baseline is measured on what it observed."""
        y = self.y if mask is None else self.y[mask]
        events = float(y.sum())
        if not counted:
            return len(y) >= MIN_LABELED and events >= MIN_EVENTS and len(y) - events >= MIN_EVENTS
        expected = float((self.p if mask is None else self.p[mask]).sum())
        positives, negatives = (float(c) for c in counted_classes(np.array(events), np.array(expected), np.array(len(y))))
        return len(y) >= MIN_LABELED and positives >= MIN_EVENTS and negatives >= MIN_EVENTS and 0 < events < len(y)


def _segment_filter(segment: str | None) -> pl.Expr | None:
    from workbench.data.slices import slice_filter

    return slice_filter(segment) if segment else None


def _measured_within(b: Break, before: np.ndarray, after: np.ndarray) -> Break:
    """``b`` as a segment's own rows measure it (one feature's raw values before and after): its unit factor, the
    ratio of the median nonzero magnitudes (a median: rows of the window served before the break, an onset placed a
    few minutes early, would pull a mean of |x| toward 1 and leave most of a x0.001 change in), and the share of its
    values lost. The whole traffic's figures stay where the segment has no value to measure them on."""
    with warnings.catch_warnings():  # no nonzero value on a side: NaN, and the whole traffic's factor stays
        warnings.simplefilter("ignore", RuntimeWarning)
        ratio = float(_median_magnitude(after) / _median_magnitude(before))
    present_b, present_a = float(np.isfinite(before).mean()) if len(before) else 0.0, \
        float(np.isfinite(after).mean()) if len(after) else 0.0
    lost = max(present_b - present_a, 0.0) / present_b if present_b > 0 and len(after) else b.coverage_lost
    return replace(b, scale_ratio=ratio if math.isfinite(ratio) and ratio > 0 else b.scale_ratio, coverage_lost=lost)


def _median_magnitude(x: np.ndarray) -> float:
    return float(np.nanmedian(np.where(np.isfinite(x) & (x != 0), np.abs(x), np.nan))) if len(x) else math.nan


def _in_segment(frame: pl.DataFrame, segment: str | None) -> np.ndarray:
    where = _segment_filter(segment)
    if where is None:
        return np.ones(frame.height, dtype=bool)
    column = segment.partition("=")[0].strip() if segment else ""
    if column not in frame.columns:
        raise ValueError(f"'{column}' is not a column of the serving log (segment {segment!r})")
    return frame.select(where.fill_null(False)).to_series().to_numpy().astype(bool)


class Simulator:
    """The incident's labelled rows and the case's model, shared by every simulated action of one investigation.

    Mutable on purpose (it caches the sampled rows, the loaded snapshots and the rows' own
    re-scoring); its methods return frozen :class:`Simulation` results. ``metric`` is the
    headline metric the recovery is measured on; ``segment`` (``"column=value"``) restricts
    both windows to one segment when the regression was found there only.

    >>> from workbench import open_case, Window
    >>> case = open_case("sample_data/cases/calibration_shift")
    >>> sim = Simulator(case, Window("2026-11-19T02:00Z", "2026-11-19T20:00Z"), Window("2026-11-20T02:00Z", "2026-11-20T20:00Z"))
    >>> sim.recalibrate().recovery > 0.5
    True
    """

    def __init__(self, case: Case, baseline: Window, incident: Window, *, metric: str = "normalized_entropy",
                 segment: str | None = None, sample: int = SAMPLE, seed: int = 0, drawn: LogScan | None = None,
                 anchors: Mapping[str, tuple[float, float]] | None = None, stand_in: tuple[Any, float] | None = None):
        self.case = case
        if stand_in is not None:  # a surrogate already fitted on these windows (feature isolation's): not fitted again
            self._stand_in = stand_in
        self.drawn = drawn
        self.anchors = dict(anchors or {})
        self.baseline_window = baseline
        self.incident_window = incident
        self.metric = metric if metric in METRICS else "normalized_entropy"
        self.segment = segment
        self.sample = sample
        self.seed = seed
        self._models: dict[str, object] = {}

    # ------------------------------------------------------------ rows and model
    def _fetch(self, window: Window, seed: int, sample: int | None = None, within: str | None = None,
               joined: bool = False) -> _Rows:
        """A sample of ``window``'s labelled rows in the simulator's segment and ``within``; ``joined``: of the whole
        traffic (what a segment new in the incident joined)."""
        case = self.case
        sample = self.sample if sample is None else sample
        where = _segment_filter(" & ".join(s for s in ((None if joined else self.segment), within) if s) or None)
        cols = list(dict.fromkeys([TS, PREDICTION, LABEL, SNAPSHOT, *case.features, *case.slices]))
        frame = self._drawn(window, where, cols, sample)
        if frame is None:
            lf = case.predictions.filter(window.contains(TS) & pl.col(LABEL).is_not_null())
            frame, _ = sample_rows((lf if where is None else lf.filter(where)).select(cols), sample, seed=seed)
        frame = frame.sort(TS)
        x = _raw(frame, case.features) if case.features else np.zeros((frame.height, 0))
        return _Rows(frame, x, frame[LABEL].cast(pl.Float64).to_numpy(), frame[PREDICTION].cast(pl.Float64).to_numpy())

    def _drawn(self, window: Window, where: pl.Expr | None, cols: list[str], sample: int | None = None) -> pl.DataFrame | None:
        """The window's labelled rows of ``drawn`` (a scan's hash sample, uniform within any window it was drawn
        from), when it holds ``sample`` of them or every row it was drawn from; else None and :meth:`_fetch` reads the
        log. On a 100M-row log this spares two reads of the windows, on a Dask cluster two reads on the client."""
        log, sample = self.drawn, self.sample if sample is None else sample
        if log is None or not set(cols) <= set(log.sample.columns) or not log.covers(window):
            return None
        rows = log.window_sample(window).filter(pl.col(LABEL).is_not_null())
        if where is not None:
            rows = rows.filter(where.fill_null(False))
        if rows.height >= sample:
            return rows.head(sample).select(cols)  # the lowest hashes: a uniform draw
        # a wide log's value budget stands in for the paired differences' sample, not for a larger one (a refit's)
        if log.complete or (sample == self.sample and rows.height >= self._wide_enough(len(cols))):
            return rows.select(cols)
        return None

    def _wide_enough(self, columns: int) -> int:
        """Rows of a window the drawn sample must hold to stand in for a read, on a log of ``columns`` columns:
        ``sample``, or on wide logs the rows feature isolation reads (:func:`workbench.model.isolation.rows_per_window`,
        a fixed number of values): a read of 20k rows of 1,000 columns would take two passes over the windows (4 s of a
        60 s diagnosis) for paired differences ~1.4x less noisy."""
        return min(self.sample, rows_per_window(columns))

    @functools.cached_property
    def incident(self) -> _Rows:
        return self._fetch(self.incident_window, self.seed + 1)

    @functools.cached_property
    def _fitting_rows(self) -> _Rows:
        """The incident rows a fitted action (a refit, a recalibration of all the traffic) learns from and is scored on:
        ``REFIT_SAMPLE`` of them (the paired differences' ``SAMPLE`` when that is as many). A model of the label learns
        from the rows' count, where a paired difference gains little beyond 20k: on two dev shift cases a refit on 10k
        fitting rows recovered 0.47 and 0.50 of the regression, on up to 50k 0.54 and 0.58. A recalibration is fitted
        on the clicks of each half of the rows and scored on the other half's, unpaired: at a base rate of 0.5% the
        window's 20k rows hold some 55 clicks a half, a factor and a ratio known to 14% each, against a regression of
        30-40% (dev ``multi/coverage_plus_calibration/2``: the same windows recovered 46% or 88% as the sample fell)."""
        rows = min(REFIT_SAMPLE, WINDOW_VALUES // max(len(self.case.features), 1))
        if self.sample >= rows:
            return self.incident
        return self._fetch(self.incident_window, self.seed + 1, rows)

    @functools.cache  # noqa: B019 - one simulator per investigation: its segments' rows live as long as it does
    def _segment_rows(self, within: str) -> _Rows:
        """The incident rows a recalibration inside segment ``within`` is fitted on: a sample of the segment's own rows
        (``SAMPLE``, or all it has), where the window's sample holds only the segment's share of the traffic. A segment
        with a third of the traffic whose clicks fell six-fold showed under ``MIN_EVENTS`` clicks in the even hours of the
        window's 20k rows (dev ``slice/collapse/16``: 3,259 of its rows), and 42 in 9,843 of its own 20k. When the
        simulator is already confined to that segment, its incident rows are the segment's own."""
        if within == self.segment:
            return self.incident
        return self._fetch(self.incident_window, self.seed + 2, within=within)

    @functools.cached_property
    def base(self) -> _Rows:
        """The baseline's labelled rows: the segment's own, or, for a segment new in the incident (under
        :data:`~workbench.data.slices.NEW_BELOW` labelled rows of its own there), the traffic it joined, as the slice
        search compares it (:mod:`workbench.data.slices`): a new app version's recalibration was "not simulated: too
        few labelled baseline rows" (outside test ``i15``). A segment that was there but thin keeps its own rows."""
        from workbench.data.slices import NEW_BELOW

        own = self._fetch(self.baseline_window, self.seed)
        if self.segment is None or own.enough() or len(own.y) >= NEW_BELOW:
            return own
        return self._fetch(self.baseline_window, self.seed, joined=True)

    def baseline_value(self, metric: str) -> float:
        return quality(metric, self.base.p, self.base.y) if self.base.enough() else math.nan

    @functools.cached_property
    def model_problem(self) -> str | None:
        """Why the rows cannot be re-scored (no model.py, no snapshots, a model that does not load), or None."""
        from workbench.model.load import model_problem

        if self.case.model is None or not self.case.snapshots:
            return "re-scoring needs model.py and snapshots/index.csv"
        return model_problem(self.case)

    @functools.cached_property
    def _stand_in(self) -> tuple[Any, float] | None:
        """Without a usable model: a surrogate of the logged logit fitted on both windows' rows (the one feature
        isolation fits, :func:`workbench.model.isolation._fit_surrogate`) and its held-out R^2; None with a model."""
        if self.model_problem is None or not self.case.features or not len(self.incident.y) or not len(self.base.y):
            return None
        from workbench.model.isolation import _fit_surrogate

        return _fit_surrogate(self.base.frame, self.incident.frame, self.base.x, self.incident.x, self.seed)

    @property
    def rescore_problem(self) -> str | None:
        """Why feature actions (fallback, backfill) cannot be re-scored, or None: with the model, or without one with a
        surrogate that explains at least ``STAND_IN_R2`` of the logged logit's variance on held-out rows. A surrogate's
        re-scoring moves each row's *logged* logit by the surrogate's change (:func:`_serve`), so what it does not
        explain stays as it was; it stands in for the model only where it explains most of the prediction."""
        if self.model_problem is None:
            return None
        fitted = self._stand_in
        if fitted is None:
            return self.model_problem
        if not fitted[1] >= STAND_IN_R2:
            return (f"{self.model_problem}; a surrogate of the logged prediction explains only R^2 {fitted[1]:.2f} of it "
                    f"(needs {STAND_IN_R2})")
        return None

    def _how_scored(self) -> str:
        """How the rows were re-scored, for a simulation's ``method``."""
        if self.model_problem is None:
            return "re-scored with the snapshot that served each row"
        assert self._stand_in is not None
        return (f"re-scored by a model-free surrogate of the logged prediction (held-out R^2 {self._stand_in[1]:.2f}; "
                "no model.py)")

    def _predict_stand_in(self, x: np.ndarray) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        assert self._stand_in is not None
        with threadpool_limits(limits=1, user_api="openmp"):
            return np.asarray(self._stand_in[0].predict(x), dtype=np.float64)

    def _logit(self, snapshot_id: str) -> Callable[[np.ndarray], np.ndarray]:
        return _model_logit(self.case, snapshot_id, self._models)

    @functools.cached_property
    def _groups(self) -> np.ndarray:
        return _serving(self.case, self.incident.frame, None)

    def _score_served(self, x: np.ndarray) -> np.ndarray:
        """Incident rows ``x`` scored by the snapshot that served each row (or by the stand-in surrogate)."""
        if self.model_problem is not None:
            return self._predict_stand_in(x)
        groups = self._groups
        return _grouped({g: self._logit(g) for g in np.unique(groups)}, groups, x)

    def _score_base(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Baseline rows as served and as ``x`` (logits), by the snapshot that served each row (or the surrogate)."""
        if self.model_problem is not None:
            return self._predict_stand_in(self.base.x), self._predict_stand_in(x)
        groups = _serving(self.case, self.base.frame, None)
        models = {g: self._logit(g) for g in np.unique(groups)}
        return _grouped(models, groups, self.base.x), _grouped(models, groups, x)

    @functools.cached_property
    def served(self) -> np.ndarray:
        """Each incident row re-scored with the snapshot that served it (logits)."""
        return self._score_served(self.incident.x)

    def _swap_in(self, z_new: np.ndarray) -> np.ndarray:
        """Logged logit plus the change of the model's output (the serving path stays; see the module docstring)."""
        return _serve(self.incident.z, self.served, z_new)

    def _result(self, action: str, target: str, z_after: np.ndarray, rows: np.ndarray, method: str,
                parameters: tuple[tuple[str, float], ...] = (), inc: _Rows | None = None, counted: bool = False
                ) -> Simulation | NotSimulated:
        inc = self.incident if inc is None else inc
        if not inc.enough(rows, counted):
            return NotSimulated(f"too few labelled incident rows to measure it on ({int(rows.sum()):,}; needs {MIN_LABELED:,} "
                                f"with {MIN_EVENTS} of each class{', observed or expected' if counted else ''})")
        baseline = self.baseline_value(self.metric)
        if not math.isfinite(baseline):
            return NotSimulated(f"too few labelled baseline rows to measure the regression ({len(self.base.y):,})")
        y, p, p_after = inc.y[rows], inc.p[rows], sigmoid(z_after[rows])
        return self._simulation(action, target, {m: (quality(m, p, y), quality(m, p_after, y)) for m in WATCHED},
                                int(rows.sum()), method, parameters,
                                loss_slope=_loss_slope(row_log_loss(p, y), row_log_loss_logit(z_after[rows], y)))

    def _simulation(self, action: str, target: str, moved: Mapping[str, tuple[float, float]], rows: int, method: str,
                    parameters: tuple[tuple[str, float], ...] = (), loss_slope: float = 1.0) -> Simulation:
        """The :class:`Simulation` of an action that moved each metric from ``before`` to ``after`` on the sampled
        incident rows (``moved``: metric -> (before, after)).

        With ``anchors`` (each metric's value over the *whole* baseline and incident windows,
        e.g. the detector's pooled values), the regression is measured there and the sample's
        "after" is corrected by how far the sample's "before" missed the window's: the
        regression estimator of survey sampling, after + slope (incident - before), with the
        logged value as the control variate (a ratio for the calibration ratio). A baseline
        measured on 20,000 sampled rows has a sampling error comparable to a small regression;
        the correction removes it, so the recovery no longer swings with the sample. ``loss_slope``
        (the least-squares slope of the rows' loss after the action on their loss before,
        :func:`_loss_slope`) says how much of the sample's miss of NE and log loss the action keeps: 1 for
        an action that moves every row alike, which is the paired difference carried onto the
        window; near 0 for one that replaces the losses (a rollback of a snapshot whose few
        extreme rows made the window's NE 58 and the sample's 64: carrying the difference
        whole predicted an NE of -6.5). Metrics without a row-level loss (AUC) keep slope 1.
        """
        def carried(m: str) -> tuple[float, float, float]:
            before, after = moved.get(m, (math.nan, math.nan))
            anchor = self.anchors.get(m)
            if anchor is None or not all(math.isfinite(v) for v in (*anchor, before, after)):
                return self.baseline_value(m), before, after
            base_w, inc_w = anchor
            if m == "calibration_ratio":
                return (base_w, inc_w, inc_w * after / before) if before > 0 and after > 0 and inc_w > 0 else \
                    (self.baseline_value(m), before, after)
            slope = loss_slope if m in ("normalized_entropy", "log_loss") else 1.0
            return base_w, inc_w, after + slope * (inc_w - before)

        metric = self.metric
        baseline, incident, value = carried(metric)
        after = tuple((m, carried(m)[2]) for m in WATCHED)
        return Simulation(action, target, metric, baseline, incident, value,
                          recovery(metric, baseline, incident, value, self._prediction_move), rows, method, after, parameters)

    @functools.cached_property
    def _prediction_move(self) -> float:
        """The served predictions' log move from the baseline's labelled rows to the incident's (the samples'
        :func:`workbench.data.onset.served_move`): whether they, not the labels, moved a calibration ratio
        (:func:`recovery`)."""
        return float(served_move(self.base.p.sum(), len(self.base.p), self.incident.p.sum(), len(self.incident.p)))

    # ------------------------------------------------------------ the actions
    def rollback(self, snapshot_id: str) -> Simulation | NotSimulated:
        """Serve ``snapshot_id`` instead of the snapshot(s) that served the incident."""
        if self.model_problem is not None:
            return NotSimulated(self.model_problem)
        sid = self.case.snapshot(snapshot_id).snapshot_id
        z_new = self._logit(sid)(self.incident.x)
        if np.isnan(z_new).any():  # a snapshot that cannot score would read as "no change" (_serve keeps the log)
            return NotSimulated(f"{sid} scores {np.isnan(z_new).mean():.0%} of the incident rows as not a number "
                                "(a tensor holds a NaN): it cannot be served")
        z = self._swap_in(z_new)
        rows = np.ones(len(z), dtype=bool)
        return self._result("rollback", sid, z, rows, f"the incident rows re-scored with {sid} instead of the snapshot that "
                            "served each")

    def _features(self, features: Sequence[str]) -> np.ndarray | NotSimulated:
        names = list(self.case.features)
        missing = [f for f in features if f not in names]
        if missing or not features:
            return NotSimulated(f"{missing or 'no features'} are not feature columns of the case")
        return np.array([names.index(f) for f in features])

    def _served_values(self, x: np.ndarray, idx: np.ndarray, how: str, where: np.ndarray) -> np.ndarray:
        """``x`` with the columns ``idx`` served as ``how`` (default, median or baseline) on the rows ``where``."""
        inc, base = self.incident, self.base
        x = x.copy()
        sub = x[where]
        if how == "default":
            sub[:, idx] = np.nan
        elif how == "median":
            with np.errstate(all="ignore"):
                sub[:, idx] = np.nan_to_num(np.nanmedian(base.x[:, idx], axis=0), nan=0.0)
        else:
            rng = np.random.default_rng(self.seed + 7)
            draw = _resample_within(_cells(inc.frame, self.case.slices), _cells(base.frame, self.case.slices), rng)
            sub[:, idx] = base.x[draw][where][:, idx]
        x[where] = sub
        return x

    def fallback(self, features: Sequence[str], *, within: str | None = None, target: str | None = None) -> Simulation | NotSimulated:
        """Serve ``features`` differently until they are fixed: the best of null (``default``), the baseline
        median (``median``) and values of baseline rows (``baseline``), picked on the incident rows of even hours and
        scored on those of odd hours (so the pick does not flatter the prediction)."""
        if self.rescore_problem is not None:
            return NotSimulated(self.rescore_problem)
        idx = self._features(features)
        if isinstance(idx, NotSimulated):
            return idx
        where = _in_segment(self.incident.frame, within)
        first = self.incident.fit_part
        y = self.incident.y
        # the stand-in surrogate learned what a null does only where the baseline held nulls: elsewhere its answer for a
        # null is an extrapolation (outside test 2: a feature never null in the baseline, served as null, predicted NE
        # 0.890 where the true model's fill gave 0.942 and a calibration ratio of 0.71)
        known_nulls = self.model_problem is None or all(
            np.isnan(self.base.x[:, j]).mean() >= SUPPORT_NULLS for j in idx)
        hows = HOWS if known_nulls else tuple(h for h in HOWS if h != "default")
        tried = {how: self._swap_in(self._score_served(self._served_values(self.incident.x, idx, how, where))) for how in hows}
        split = bool(first.any() and not first.all())
        choose, scored = (first, ~first) if split else (np.ones(len(y), dtype=bool),) * 2  # an incident within one hour
        best = min(tried, key=lambda h: row_log_loss_logit(tried[h][choose], y[choose]).mean())
        place = f" on {within}" if within else ""
        how = ("on the incident rows of even hours, scored on those of odd hours" if split else
               "on the incident's rows, all in one hour, and scored on them")
        return self._result("fallback", target or ",".join(features), tried[best], scored,
                            f"{', '.join(features)} served as {SERVED[best]}{place} (the best of {len(hows)} serving choices "
                            f"{how}), {self._how_scored()}", (("with", float(HOWS.index(best))),))

    def backfill(self, features: Sequence[str], breaks: Mapping[str, Break], *, within: str | None = None,
                 target: str | None = None) -> Simulation | NotSimulated:
        """The quality once ``features`` are restored to their baseline behaviour.

        A change of scale by a measured factor is undone on the incident rows (divided out)
        and the rows re-scored. Any other break loses values a backfill would bring back
        and no simulation can know, so it is *reproduced on the baseline rows*, whose true
        values are known (lost values nulled at the measured rate, one draw per row for all
        the features; other breaks, a coverage loss served as a default instead of nulls among
        them, served as incident values of the same slice cell): the loss the break adds there
        is the loss a backfill removes from the incident.
        """
        if self.rescore_problem is not None:
            return NotSimulated(self.rescore_problem)
        idx = self._features(features)
        if isinstance(idx, NotSimulated):
            return idx
        inc, base = self.incident, self.base
        place = f" on {within}" if within else ""
        kinds = [breaks.get(f, Break("distribution")) for f in features]
        if within is not None:  # the drift check measured the whole traffic, which dilutes a segment's break
            seg_b, seg_i = _in_segment(base.frame, within), _in_segment(inc.frame, within)
            if not seg_b.any():  # a segment new in the incident: no row of its own to measure or reproduce the break on
                return NotSimulated(f"{within} has no labelled baseline rows to reproduce the break on (it is new in the "
                                    "incident)")
            kinds = [_measured_within(b, base.x[seg_b, j], inc.x[seg_i, j]) for b, j in zip(kinds, idx, strict=True)]
        if all(b.kind == "scale" and b.scale_ratio and math.isfinite(b.scale_ratio) and b.scale_ratio > 0 for b in kinds):
            where = _in_segment(inc.frame, within)
            x = inc.x.copy()
            ratios = np.array([b.scale_ratio for b in kinds], dtype=float)
            x[np.ix_(where, idx)] = x[np.ix_(where, idx)] / ratios
            z = self._swap_in(self._score_served(x))
            return self._result("backfill", target or ",".join(features), z, np.ones(len(z), dtype=bool),
                                f"{', '.join(features)} divided by their measured scale ratio{place}, the rows "
                                f"{self._how_scored()}")
        if not base.enough() or not inc.enough():
            return NotSimulated("too few labelled rows in a window to measure the break's damage")
        where = _in_segment(base.frame, within)
        rng = np.random.default_rng(self.seed + 11)
        draw = _resample_within(_cells(base.frame, self.case.slices), _cells(inc.frame, self.case.slices), rng)
        lose = rng.random(len(base.y))
        x = base.x.copy()
        for j, b in zip(idx, kinds, strict=True):
            col = x[:, j]
            lost = b.coverage_lost or 0.0
            if b.kind == "coverage" and lost > 0:  # values lost to nulls (a default's are served as they came)
                broken = np.where(lose < lost, np.nan, col)
            elif b.kind == "scale" and b.scale_ratio and math.isfinite(b.scale_ratio):
                broken = col * b.scale_ratio
            else:
                broken = inc.x[draw, j]
            x[:, j] = np.where(where, broken, col)
        served, z_new = self._score_base(x)
        z_logged = base.z
        z_broken = _serve(z_logged, served, z_new)
        p_broken = sigmoid(z_broken)

        def repaired(m: str) -> float:
            """The incident's value of ``m`` without the damage the break does on the baseline rows."""
            before, clean, broken = quality(m, inc.p, inc.y), quality(m, base.p, base.y), quality(m, p_broken, base.y)
            # the damage was measured on other rows: it takes off at most the whole regression (never past the baseline)
            fixed = (before * clean / broken if broken > 0 else math.nan) if m == "calibration_ratio" else before - (broken - clean)
            base_m = self.baseline_value(m)
            return base_m if math.isfinite(base_m) and (fixed - base_m) * (before - base_m) < 0 else fixed

        metric = self.metric
        damage = quality(metric, p_broken, base.y) - quality(metric, base.p, base.y)
        return self._simulation("backfill", target or ",".join(features),
                                {m: (quality(m, inc.p, inc.y), repaired(m)) for m in WATCHED}, len(inc.y),
                                f"the break of {', '.join(features)} reproduced on {len(base.y):,} labelled baseline rows{place} "
                                f"({self._how_scored()}): it costs {NAMES.get(metric, metric)} {damage:+.4f} there, which a "
                                "backfill takes off the incident")

    def recalibrate(self, within: str | None = None) -> Simulation | NotSimulated:
        """Fit a correction of the logged logit on the labelled incident rows and score it out of sample by halves.

        The correction fitted on the rows of even hours scores those of odd hours and the one fitted on odd hours the
        even ones, so every row is scored by a fit that did not see it and the prediction stands on all of them. Scored
        on one half alone, a segment whose clicks collapsed (a handful a half) was predicted by one noisy fit on a
        third of the evidence (dev slice/collapse/1: odds x 0.10 from the even hours, the odd hours' ratio 0.47
        against a baseline 1.07). The action proposed is the correction fitted on all the rows. A logit-scale
        correction (slope and offset) is used when it beats the odds factor by ``LRT`` on all of them and each half
        holds ``MIN_EVENTS`` observed clicks and non-clicks; else the odds factor. A half counts its clicks as observed
        or expected (:meth:`_Rows.enough`). When only one half can be fitted, it scores the other."""
        inc = self.incident if within else self._fitting_rows
        where = _in_segment(inc.frame, within)
        own = self._segment_rows(within) if within else inc
        even = own.fit_part
        halves = [(fit, score) for fit, score in ((even, ~inc.fit_part), (~even, inc.fit_part)) if own.enough(fit, counted=True)]
        if not halves:
            return NotSimulated(f"too few labelled incident rows{' in ' + within if within else ''} in either half of the "
                                f"window's hours to fit a recalibration on ({int(even.sum()):,} and {int((~even).sum()):,})")
        fitted = np.ones(len(own.y), dtype=bool) if len(halves) == 2 else halves[0][0]
        z, y = own.z[fitted], own.y[fitted]
        shift = fit_offset(z, y)
        slope, offset = _fit_platt(z, y)
        gain = 2 * (row_log_loss_logit(z + shift, y).sum() - row_log_loss_logit(slope * z + offset, y).sum())
        platt = gain > LRT and all(min(own.y[h].sum(), h.sum() - own.y[h].sum()) >= MIN_EVENTS for h, _ in halves)
        z_after = inc.z.copy()
        scored = np.zeros(len(inc.y), dtype=bool)
        for fit, score in halves:
            rows = where & score
            if platt:
                a, b = _fit_platt(own.z[fit], own.y[fit])
                z_after[rows] = a * inc.z[rows] + b
            else:
                z_after[rows] = inc.z[rows] + fit_offset(own.z[fit], own.y[fit])
            scored |= score
        if platt:
            params: tuple[tuple[str, float], ...] = (("factor", slope), ("offset", offset))
            how = f"logit x {slope:.3f} {offset:+.3f}"
        else:
            params = (("factor", math.exp(shift)),)
            how = f"odds x {math.exp(shift):.3f}"
        place = f" on {within}" if within else ""
        parity = ("even", "odd") if halves[0][0] is even else ("odd", "even")
        scoring = ("scored out of sample by halves (fitted on the even hours for the odd ones, and the reverse)"
                   if len(halves) == 2 else f"scored on the {parity[1]} hours (fitted on the {parity[0]} ones)")
        return self._result("recalibrate", within or "calibration", z_after, scored,
                            f"{how}{place}, fitted on the {int(fitted.sum()):,} labelled incident rows and {scoring}", params,
                            inc=inc, counted=True)

    def refit(self, target: str) -> Simulation | NotSimulated:
        """A refresh on the new population: a boosted model of the label from the served logit and the features, fitted
        on the labelled incident rows of even hours and scored on those of odd hours (see the module docstring)."""
        from threadpoolctl import threadpool_limits

        inc = self._fitting_rows
        fit = inc.fit_part
        y = inc.y[fit]
        if min(y.sum(), len(y) - y.sum()) < LABEL_EVENTS:
            return NotSimulated(f"too few labelled incident rows in the even hours of the window to refit a model on "
                                f"({int(y.sum()):,} positives of {len(y):,}; needs {LABEL_EVENTS} of each class)")
        x = np.column_stack([inc.z, inc.x]).astype(np.float32)
        keep = varying(x[fit])
        if not keep.any():
            return NotSimulated("neither the served prediction nor any feature varies in the window: nothing to refit on")
        x = x[:, keep]
        model = label_classifier(len(y), self.seed)
        with threadpool_limits(limits=1, user_api="openmp"):
            model.fit(x[fit], y)
            p_new = model.predict_proba(x[~fit])[:, 1]
        z_after = inc.z.copy()
        z_after[~fit] = logit(np.clip(p_new, 1e-6, 1 - 1e-6))
        return self._result("exclude_training", target, z_after, ~fit,
                            f"a model refit on the new population (gradient-boosted trees on the served logit and "
                            f"{int(keep[1:].sum())} features, {model.n_iter_} rounds), fitted on the {len(y):,} labelled incident "
                            "rows of even hours and scored on those of odd hours", inc=inc)

    def relabel(self) -> Simulation | NotSimulated:
        """The window's quality with labels as the baseline's calibration says they should be (a label incident's fix)."""
        base, inc = self.base, self.incident
        if not base.enough():
            return NotSimulated(f"too few labelled baseline rows to learn the calibration from ({len(base.y):,})")
        edges = np.unique(np.quantile(base.p, np.linspace(0, 1, BINS + 1)[1:-1]))
        bb, bi = np.searchsorted(edges, base.p), np.searchsorted(edges, inc.p)
        labels = np.bincount(bb, weights=base.y, minlength=len(edges) + 1)
        preds = np.bincount(bb, weights=base.p, minlength=len(edges) + 1)
        ratio = np.where(preds > 0, labels / np.maximum(preds, 1e-12), 1.0)
        r = np.clip(inc.p * ratio[bi], 0.0, 1.0)
        rows = np.ones(len(inc.y), dtype=bool)
        if not inc.enough(rows):
            return NotSimulated(f"too few labelled incident rows ({len(inc.y):,})")
        # the expected labels carry no label noise: little of the sample's chance miss of the window's NE is theirs
        return self._simulation("exclude_training", "label",
                                {m: (quality(m, inc.p, inc.y), _soft_quality(m, inc.p, r)) for m in WATCHED}, len(inc.y),
                                f"the served predictions scored against labels as the baseline's calibration per prediction "
                                f"bin ({BINS} bins) says they should be",
                                loss_slope=_loss_slope(row_log_loss(inc.p, inc.y), row_log_loss(inc.p, r)))


def _loss_slope(before: np.ndarray, after: np.ndarray) -> float:
    """The least-squares slope of the rows' loss ``after`` an action on their loss ``before`` it.

    The regression estimator's coefficient (Cochran 1977, ch. 7): with it, a sample's miss of
    the window's loss is carried onto the prediction in the share the action keeps it. 1 when
    the losses do not vary (nothing to regress on)."""
    var = float(np.var(before))
    if not (var > 0 and math.isfinite(var)):
        return 1.0
    return float(np.mean((before - before.mean()) * (after - after.mean())) / var)


def _serve(z_logged: np.ndarray, served: np.ndarray, z_new: np.ndarray) -> np.ndarray:
    """What the serving path makes of the model's new output ``z_new``, per row.

    Where the logged prediction is the model's own output (the same clipped logit: the
    serving path is the identity, saturated rows included) it is ``z_new``; where the serving
    snapshot's output is not finite (serving fell back to a constant) it is ``z_new`` too (a
    rollback's good snapshot scores them); elsewhere a serving-side transform sits between
    them, and the model's change is added to the logged logit, ``z_logged + z_new - served``.
    A row whose new output is not a number either (the broken snapshot scores it with the
    feature changed too) keeps what serving logged, its fallback: a feature's repair does not
    mend a snapshot that cannot score.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        own = logit(sigmoid(served))  # the model's output clipped as the log's is
        identity = ~np.isfinite(served) | (np.abs(own - z_logged) < 1e-3)
        out = np.where(identity, z_new, z_logged + z_new - own)
    return np.where(np.isnan(out), z_logged, out)


def _fit_platt(z: np.ndarray, y: np.ndarray, steps: int = 50) -> tuple[float, float]:
    """Maximum-likelihood ``(a, b)`` of ``sigmoid(a z + b)`` (Platt scaling by damped Newton steps).

    Newton's method from two starts, the odds fit ``(1, fit_offset(z, y))`` and the base rate ``(0, logit(mean y))``,
    keeping the better: so the result is never worse than the odds factor it competes with, nor than ignoring the
    logits. Each step is halved until the log loss (unclipped: the likelihood the steps climb) does not rise. The
    likelihood is concave, but a full step from far away overshoots: on over-confident logits (a temperature above 1,
    ``z = 4 t``) undamped Newton from ``(1, 0)`` ran to slopes of 1e14 on every try, so the logit-scale fix that
    would undo the temperature was never proposed; and judged on the clipped loss, a third of the rows pinned at a
    logit of 30 let a step to a slope of 1e10 pass for no worse (a review)."""
    x = np.column_stack([z, np.ones_like(z)]).astype(float)
    y = np.asarray(y, dtype=float)

    def loss(v: np.ndarray) -> float:
        s = x @ v
        return float((np.logaddexp(0.0, s) - y * s).sum())

    def climb(w: np.ndarray) -> tuple[np.ndarray, float]:
        current = loss(w)
        for _ in range(steps):  # Newton iterations on two parameters, not a loop over rows
            p = sigmoid(x @ w)
            hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-9 * np.eye(2)
            step = np.linalg.solve(hess, x.T @ (y - p))
            t = 1.0
            while t > 1e-6 and not loss(w + t * step) <= current:
                t /= 2
            if t <= 1e-6:
                break
            w = w + t * step
            current = loss(w)
            if np.abs(t * step).max() < 1e-10:
                break
        return w, current

    rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6)) if len(y) else 0.5
    fits = [climb(np.array([1.0, fit_offset(z, y)])), climb(np.array([0.0, math.log(rate / (1 - rate))]))]
    w, _ = min(fits, key=lambda f: f[1])
    return float(w[0]), float(w[1])


# ---------------------------------------------------------------- the last good snapshot
def last_good_snapshot(case: Case, bad: str, validate: Callable[[str], Validation] | None = None, *,
                       tries: int = 3, since: datetime | None = None) -> tuple[str, str] | None:
    """The latest snapshot published before ``bad`` that is in fact good, and why; None when there is none.

    Walking back from ``bad``'s predecessor, a snapshot is good when it is marked ``stable``
    or passes :func:`~workbench.model.validation.validate_snapshot` (its gates against the
    stable snapshot on holdout rows published before it); at most ``tries`` are validated.
    Snapshots published after ``bad`` are never proposed: they may be warm-started from it.
    When none of those passes, the latest stable snapshot before ``bad`` is, with that said.
    ``since``, when ``bad`` started serving later than it was published (the log shows an old snapshot pinned back,
    or one re-deployed after a rollback), takes the place of its publish time: the snapshots that served before it
    came are the ones to return to. The reason states that start only when it came an hour or more after the publish
    (a snapshot whose first sampled row came a minute after it was published was not "pinned back": outside test 6).
    """
    snap = case.snapshot(bad)
    until = max(since, snap.published_at) if since is not None else snap.published_at
    earlier = sorted((s for s in case.snapshots if s.published_at < until and s.snapshot_id != bad),
                     key=lambda s: s.published_at)
    if not earlier:
        return None
    if validate is None:
        from workbench.model.validation import validate_snapshot

        def validate(sid: str) -> Validation:
            return validate_snapshot(case, sid)

    for s in reversed(earlier[-tries:]):
        if s.stable:
            return s.snapshot_id, "marked stable"
        try:
            result = validate(s.snapshot_id)
        except CaseError:  # too few labelled rows to validate on: this snapshot is not known to be good
            continue
        if result.passed:
            late = (until - snap.published_at).total_seconds() / 3600  # a pin back, a re-deploy: not a minute's lag
            when = (f"published before {snap.snapshot_id} started serving at {until:%Y-%m-%d %H:%M}, {late:.0f} h after "
                    "it was published" if late >= 1 else f"published before {snap.snapshot_id}")
            return s.snapshot_id, f"{when} and passes validation against {result.reference_id}"
    stable = [s for s in earlier if s.stable]
    if stable:
        return stable[-1].snapshot_id, f"the latest stable snapshot before {snap.snapshot_id} (the {tries} before it fail validation)"
    return None
