"""Did a quality metric regress beyond its normal variation, from which hour, and how badly?

Method (one metric, hourly series from :func:`workbench.data.quality.quality_series`):

1. **Label delay.** The latest hours whose label join rate is below 90% of the
   case's typical (median) join rate are *not reliably labeled*: label metrics
   there are not used (:mod:`workbench.data.estimate` estimates them instead).
   Metrics that need no labels (``prediction_mean``) use every hour.
2. **Cycle-aware baseline.** The metric is modelled as a level plus a daily cycle
   (two harmonics of 24 h) plus noise, fitted by weighted least squares with each
   hour weighted by its own sampling variance (NE: delta method from the hour's
   sums of row loss, loss squared and loss x label; AUC: Hanley-McNeil; ratios:
   binomial error of the positives). Ratios (calibration ratio, prediction mean,
   label rate) are modelled on the log scale, so their steps are relative changes.
3. **Change point.** A single step ``delta * 1[t >= tau]`` is added; for every
   candidate hour ``tau`` (at least 12 hours of history before it and 3 hours
   after) the step's t statistic is computed from the cycle-residualised series
   (Frisch-Waugh), and the onset is the ``tau`` with the largest statistic in the
   regression direction (NE, log loss up; AUC down; either way for ratios): the
   least-squares single change point.
4. **Robust noise.** The residuals are in units of each hour's sampling error;
   their spread ``1.4826 * MAD`` (of the fit with the step, so outlying hours and a
   misshapen incident barely move it) is the over-dispersion: hour-to-hour
   variation beyond sampling (traffic mix, model refreshes). It is floored at 1,
   never below sampling noise. ``severity`` is the step over its standard error
   under that scale: a robust z.
5. **Decision.** Because the statistic is a maximum over many candidate hours,
   it is compared with the ``1 - alpha`` quantile of the same maximum under the
   no-change model, computed by Monte Carlo (``null_draws`` series of Gaussian
   noise with the observed weights, put through steps 3-4; typically z ~ 3.8
   for 60-70 usable hours). With ``alpha =
   0.001`` a case with no regression alarms once in a thousand, per metric, if
   the model holds. A regression must also be *material*: the step must be at
   least ``min_effect`` relative to the level before it (1% for NE, log loss and
   AUC; 5% on the log scale for ratios, i.e. x1.05 or /1.05), because on millions of rows every change is significant
   and the peers' "always drifting" alarms are exactly that mistake.
6. **Joint onset.** When NE regressed and the calibration ratio changed
   significantly too (``locate_with``), the onset is where the sum of their
   squared step statistics peaks: one incident, one onset, located by both
   signals (NE alone is noisy at the hour level; on 110 generated cases this
   took onsets within 2 h from 87% to 97%).

Windows: ``incident`` runs from the onset to the end of the last reliably
labeled hour; ``baseline`` is the same hours of day one day earlier when the
incident is at most 24 h long, else the whole days before the onset (never
overlapping the incident, clipped to the data). Without a detection both are
default windows: the last 24 reliably labeled hours and the 24 h before them.

The false-alarm rate is measured in ``tests/test_onset.py`` (the committed
control, and 12 synthetic logs with a daily cycle and label delay biased toward
late clicks) and by ``benchmarks/onset_seeds.py`` over generated seeds (counts in
``benchmarks/README.md``): zero so far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

import numpy as np
import polars as pl

from workbench._render import fmt, jsonable, records
from workbench.case.loader import Case
from workbench.data.quality import QualitySeries, pool, quality_series
from workbench.errors import WorkbenchError
from workbench.metrics import auc_se, reliable_end
from workbench.windows import Window, iso

__all__ = ["ONSET_METRICS", "Onset", "Onsets", "detect_onset", "detect_onsets", "reliable_rows"]

# +1: higher is worse, -1: lower is worse, 0: a change either way is a regression
DIRECTION = {"normalized_entropy": 1, "log_loss": 1, "auc": -1,
             "calibration_ratio": 0, "prediction_mean": 0, "label_rate": 0}
REGRESSION_METRICS = ("normalized_entropy", "log_loss", "auc", "calibration_ratio")  # the others are shifts, not alarms
LOG_SCALE = {"calibration_ratio", "prediction_mean", "label_rate"}
NEEDS_LABELS = {"normalized_entropy", "log_loss", "auc", "calibration_ratio", "label_rate"}
MIN_EFFECT = {"normalized_entropy": 0.01, "log_loss": 0.01, "auc": 0.01,
              "calibration_ratio": 0.05, "prediction_mean": 0.05, "label_rate": 0.05}
ONSET_METRICS = ("normalized_entropy", "calibration_ratio", "prediction_mean", "label_rate")
MIN_BEFORE_H, MIN_AFTER_H, MIN_ROWS = 12, 3, 30
MAD_SCALE = 1.4826


@dataclass(frozen=True, slots=True)
class Onset:
    """The verdict on one metric. ``severity`` is the robust z of the step (see the module docstring);
    ``effect`` the step relative to the level before it (ratios: ``exp(log step) - 1``)."""

    detected: bool
    metric: str
    onset: datetime | None
    baseline_value: float
    current_value: float
    severity: float
    effect: float
    threshold: float  # the critical robust z (Monte Carlo, 1 - alpha)
    baseline: Window
    incident: Window
    label_delay_hours: int
    series: pl.DataFrame = field(repr=False)  # hourly: window, value, expected, z, used + the quality columns
    method: str = ""

    def to_dict(self) -> dict:
        return {
            "detected": self.detected, "metric": self.metric, "onset": iso(self.onset) if self.onset else None,
            "baseline": jsonable(self.baseline_value), "current": jsonable(self.current_value),
            "severity": jsonable(self.severity), "effect": jsonable(self.effect), "threshold": jsonable(self.threshold),
            "baseline_window": self.baseline.to_dict(), "incident_window": self.incident.to_dict(),
            "label_delay_hours": self.label_delay_hours, "method": self.method,
            "series": records(self.series.select("window", "value", "expected", "z", "used")),
        }

    def __str__(self) -> str:
        if not self.detected:
            return (f"{self.metric}: no regression beyond normal variation (max robust z {fmt(self.severity, 1)} < "
                    f"{fmt(self.threshold, 1)} or effect {self.effect:+.1%} below the floor); "
                    f"default windows baseline {self.baseline}, incident {self.incident}")
        return (f"{self.metric}: regressed from {fmt(self.baseline_value)} to {fmt(self.current_value)} "
                f"({self.effect:+.1%}) from {iso(self.onset)} (robust z {fmt(self.severity, 1)}, "
                f"threshold {fmt(self.threshold, 1)}); baseline {self.baseline}")


@dataclass(frozen=True, slots=True)
class Onsets:
    """Several metrics checked on one series; ``primary`` is normalized entropy when checked."""

    by_metric: dict[str, Onset]

    @property
    def primary(self) -> Onset:
        return self.by_metric.get("normalized_entropy") or next(iter(self.by_metric.values()))

    @property
    def detected(self) -> bool:
        """A quality metric regressed (prediction mean and label rate shifts alone are not alarms)."""
        return any(o.detected for m, o in self.by_metric.items() if m in REGRESSION_METRICS)

    @property
    def anomaly(self) -> Onset:
        """The verdict to report: NE when it regressed, else the calibration ratio when that regressed
        (a quality regression NE can miss on small samples), else NE (not detected)."""
        primary = self.primary
        cal = self.by_metric.get("calibration_ratio")
        if not primary.detected and cal is not None and cal.detected:
            return cal
        return primary

    @property
    def earliest(self) -> Onset | None:
        """The detected metric with the earliest onset (the strongest on ties)."""
        hits = [o for m, o in self.by_metric.items() if o.detected and o.onset is not None and m in REGRESSION_METRICS]
        return min(hits, key=lambda o: (o.onset, -o.severity)) if hits else None

    def to_dict(self) -> dict:
        return {"detected": self.detected, "metrics": {k: v.to_dict() for k, v in self.by_metric.items()}}

    def __str__(self) -> str:
        return "\n".join(str(o) for o in self.by_metric.values())


# ---------------------------------------------------------------- the scan
def _design(t_hours: np.ndarray, period: float = 24.0, harmonics: int = 2) -> np.ndarray:
    cols = [np.ones_like(t_hours)]
    for k in range(1, harmonics + 1):
        cols += [np.cos(2 * np.pi * k * t_hours / period), np.sin(2 * np.pi * k * t_hours / period)]
    return np.column_stack(cols)


def _residualizer(x: np.ndarray) -> np.ndarray:
    q, _ = np.linalg.qr(x)
    return np.eye(len(x)) - q @ q.T


def _scan(m: np.ndarray, steps: np.ndarray, y: np.ndarray, direction: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The least-squares change point of each column of ``y`` (H, k) among the candidate ``steps`` (H, C).

    ``m`` residualises on the cycle design (weighted space). Returns the best
    candidate, its robust t, the signed step projection and the robust noise scale.
    """
    ry = np.ascontiguousarray((m @ y).T)  # (k, H): rows contiguous for the medians below
    rs = m @ steps
    units = (rs / np.maximum(np.sqrt((rs * rs).sum(axis=0)), 1e-12)).T  # (C, H)
    stat = ry @ units.T  # (k, C): step coefficient x its norm, signed
    oriented = stat * direction if direction else np.abs(stat)
    best = np.argmax(oriented, axis=1)
    rows = np.arange(len(best))
    proj = stat[rows, best]
    resid = ry - units[best] * proj[:, None]  # the residuals of the fit with the step
    med = np.median(resid, axis=1, keepdims=True)
    # the noise scale relative to the hours' own sampling error: never below it (over-dispersion only)
    sigma = np.maximum(MAD_SCALE * np.median(np.abs(resid - med), axis=1), 1.0)
    return best, oriented[rows, best] / sigma, proj, sigma


def _sampling_se(table: pl.DataFrame, metric: str) -> np.ndarray:
    """Each hour's standard error of ``metric`` (log scale for ratios) from its own rows."""
    n = table["labeled"].cast(pl.Float64).to_numpy()
    rows = table["rows"].cast(pl.Float64).to_numpy()
    pos = table["positives"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        r = pos / n
        match metric:
            case "normalized_entropy":
                return table["ne_se"].fill_null(np.nan).to_numpy()
            case "log_loss":
                mean = table["ll_sum"].to_numpy() / n
                return np.sqrt(np.maximum(table["ll_sq_sum"].to_numpy() / n - mean**2, 0) / n)
            case "auc":
                return np.array([auc_se(a, p, q) for a, p, q in
                                 zip(table["auc"].fill_null(np.nan).to_numpy(), pos, n - pos, strict=True)])
            case "calibration_ratio" | "label_rate":
                return np.sqrt((1 - r) / (n * r))  # binomial error of log(sum y)
            case "prediction_mean":
                mean = table["pred_sum"].to_numpy() / rows
                var = np.maximum(table["pred_sq_sum"].to_numpy() / rows - mean**2, 0)
                return np.sqrt(var / rows) / mean
    raise AssertionError(metric)


@lru_cache(maxsize=64)
def _critical(weights: bytes, t_key: bytes, cand: bytes, direction: int, alpha: float, draws: int) -> float:
    w = np.frombuffer(weights)
    t = np.frombuffer(t_key)
    idx = np.frombuffer(cand, dtype=np.int64)
    sw = np.sqrt(w)
    m = _residualizer(_design(t) * sw[:, None])
    steps = (t[:, None] >= t[idx][None, :]).astype(float) * sw[:, None]
    z = np.random.default_rng(20261120).standard_normal((len(w), draws))
    _, tmax, _, _ = _scan(m, steps, z, direction)
    return float(np.quantile(tmax, 1 - alpha))


def reliable_rows(series: pl.DataFrame) -> tuple[int, int]:
    """Index one past the last reliably labeled period of a quality table, and the number of trailing delayed periods
    (:func:`workbench.metrics.reliable_end` on its join rates)."""
    end = reliable_end(series["label_join_rate"].fill_null(0.0).to_numpy())
    return end, series.height - end


def _windows(onset: datetime | None, inc_end: datetime, start: datetime) -> tuple[Window, Window]:
    day = timedelta(hours=24)
    if onset is None:
        inc_start = max(start + timedelta(hours=1), inc_end - day)
        incident = Window(inc_start, inc_end)
        b_start = max(start, inc_start - day)
        return Window(b_start, inc_start) if b_start < inc_start else incident, incident
    incident = Window(onset, max(inc_end, onset + timedelta(hours=1)))
    length = incident.duration
    if length <= day and onset - day >= start:
        return Window(onset - day, incident.end - day), incident
    days = math.ceil(length / day)
    b_start = max(start, onset - days * day)
    if b_start >= onset:
        return incident, incident
    return Window(b_start, onset), incident


def _as_series(case_or_series: Case | QualitySeries) -> tuple[QualitySeries, datetime]:
    if isinstance(case_or_series, QualitySeries):
        s = case_or_series
        if s.by:
            raise WorkbenchError("detect_onset", f"the series is split by {list(s.by)}; onset needs one row per window.",
                                 "pass quality_series(case) without by=, or filter rows with rows=.")
        return s, s.table["window"].min()
    return quality_series(case_or_series), case_or_series.start


@dataclass(frozen=True, slots=True)
class _Fit:
    """One metric's scan over the hourly table (indices are rows of the table)."""

    metric: str
    values: np.ndarray  # on the natural scale
    used: np.ndarray  # bool per row
    cand_rows: np.ndarray  # table rows of the candidate onsets
    profile: np.ndarray  # robust oriented t per candidate
    best: int  # index into cand_rows
    severity: float
    threshold: float
    effect: float
    expected: np.ndarray
    z: np.ndarray
    significant: bool  # severity >= threshold and effect material


def _fit(table: pl.DataFrame, metric: str, end_idx: int, alpha: float, min_effect: float | None, null_draws: int) -> _Fit:
    n_rows = table.height
    step_h = ((table["window"][1] - table["window"][0]) / timedelta(hours=1)) if n_rows > 1 else 1.0
    raw = table[metric].cast(pl.Float64).fill_null(np.nan).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.log(raw) if metric in LOG_SCALE else raw
        weights = 1.0 / _sampling_se(table, metric) ** 2
    counts = table["labeled" if metric in NEEDS_LABELS else "rows"].to_numpy()
    t_hours = ((table["window"] - table["window"][0]).dt.total_seconds() / 3600.0).to_numpy()
    used = (np.arange(n_rows) < end_idx) & np.isfinite(values) & np.isfinite(weights) & (counts >= MIN_ROWS)
    ui = np.flatnonzero(used)
    direction = DIRECTION[metric]
    floor = MIN_EFFECT[metric] if min_effect is None else min_effect
    expected, zs = np.full(n_rows, np.nan), np.full(n_rows, np.nan)
    empty = _Fit(metric, raw, used, np.array([], dtype=np.int64), np.array([]), 0, 0.0, math.inf, 0.0, expected, zs, False)
    if len(ui) < 24 / max(step_h, 1e-9):
        return empty
    t = t_hours[ui]
    cand = np.flatnonzero((t - t[0] >= MIN_BEFORE_H) & (t[-1] - t + step_h >= MIN_AFTER_H))
    if not len(cand):
        return empty
    y, w = values[ui], weights[ui]
    sw = np.sqrt(w)
    x = _design(t) * sw[:, None]
    m = _residualizer(x)
    steps = (t[:, None] >= t[cand][None, :]).astype(float) * sw[:, None]
    best, tval, _, sigma = _scan(m, steps, (y * sw)[:, None], direction)
    b = int(best[0])
    # the whole profile, on the robust scale of the best fit
    rs = m @ steps
    units = rs / np.maximum(np.sqrt((rs * rs).sum(axis=0)), 1e-12)
    stat = units.T @ (m @ (y * sw))
    profile = (stat * direction if direction else np.abs(stat)) / float(sigma[0])
    threshold = _critical(w.tobytes(), t.tobytes(), cand.astype(np.int64).tobytes(), direction, alpha, null_draws)
    coef, *_ = np.linalg.lstsq(np.column_stack([x, steps[:, b]]), y * sw, rcond=None)
    fitted = _design(t) @ coef[:-1]  # the cycle-aware expectation without the step
    before = slice(0, max(int(cand[b]), 1))
    level = float(np.average(fitted[before], weights=w[before]))
    step = float(coef[-1]) if metric in LOG_SCALE else float(coef[-1]) / abs(level) if level else math.inf
    effect = math.expm1(step) if metric in LOG_SCALE else step  # relative change, for people
    expected[ui] = np.exp(fitted) if metric in LOG_SCALE else fitted
    zs[ui] = (y - fitted) * sw / float(sigma[0])
    oriented_effect = step * direction if direction else abs(step)  # ratios: |log change|, symmetric up and down
    significant = bool(tval[0] >= threshold and oriented_effect >= floor)
    return _Fit(metric, raw, used, ui[cand], profile, b, float(tval[0]), threshold, effect, expected, zs, significant)


def _joint_onset(main: _Fit, support: list[_Fit]) -> tuple[int, list[str]]:
    """The table row of the onset located jointly by ``main`` and the significant ``support`` fits.

    A common step is most likely where the sum of the squared (positive) profile
    statistics peaks; metrics that saw no significant change do not vote.
    """
    score = np.maximum(main.profile, 0) ** 2
    rows = main.cand_rows
    voters = []
    for f in support:
        if not f.significant:
            continue
        common = np.isin(rows, f.cand_rows)
        add = np.zeros(len(rows))
        pos = {r: k for k, r in enumerate(f.cand_rows)}
        add[common] = np.maximum(f.profile[[pos[r] for r in rows[common]]], 0) ** 2
        score = score + add
        voters.append(f.metric)
    return int(rows[int(np.argmax(score))]), voters


def detect_onset(case_or_series: Case | QualitySeries, metric: str = "normalized_entropy", *, alpha: float = 0.001,
                 min_effect: float | None = None, null_draws: int = 10_000,
                 locate_with: tuple[str, ...] = ("calibration_ratio",)) -> Onset:
    """Decide whether ``metric`` regressed beyond its normal variation; find the onset hour and severity.

    See the module docstring for the method. ``case_or_series`` is a case or an
    hourly :class:`~workbench.data.quality.QualitySeries` (reused across metrics).
    ``locate_with`` names metrics that, when they changed significantly too,
    help locate the common onset (the decision is ``metric``'s alone).

    >>> from workbench import open_case
    >>> detect_onset(open_case("sample_data/cases/control")).detected
    False
    """
    for name in (metric, *locate_with):
        if name not in DIRECTION:
            raise WorkbenchError("detect_onset", f"unknown metric '{name}'.", f"use one of {list(DIRECTION)}.")
    series, start = _as_series(case_or_series)
    table = series.table.sort("window")
    step = (table["window"][1] - table["window"][0]) if table.height > 1 else timedelta(hours=1)
    label_end, delayed = reliable_rows(table)

    def end_of(name: str) -> int:
        return label_end if name in NEEDS_LABELS else table.height

    fit = _fit(table, metric, end_of(metric), alpha, min_effect, null_draws)
    floor = MIN_EFFECT[metric] if min_effect is None else min_effect
    method = (f"{metric}: WLS level + 2 daily harmonics + one step on hourly values weighted by their sampling error; "
              f"least-squares change point; robust z (MAD, over-dispersion >= 1) vs the Monte Carlo {1 - alpha:.1%} "
              f"quantile of the max statistic; materiality {floor:.0%}")
    onset_time: datetime | None = None
    if fit.significant:
        row = int(fit.cand_rows[fit.best])
        if locate_with:
            support = [_fit(table, m, end_of(m), alpha, None, null_draws) for m in locate_with if m != metric]
            row, voters = _joint_onset(fit, support)
            if voters:
                method += f"; onset located jointly with {', '.join(voters)}"
        onset_time = table["window"][row]

    last_end = table["window"][max(end_of(metric) - 1, 0)] + step if table.height else start
    baseline, incident = _windows(onset_time, last_end, start)
    in_b = pl.col("window").is_between(pl.lit(baseline.start), pl.lit(baseline.end), closed="left")
    in_i = pl.col("window").is_between(pl.lit(incident.start), pl.lit(incident.end), closed="left")
    table = table.with_columns(
        pl.Series("value", fit.values).fill_nan(None), pl.Series("expected", fit.expected).fill_nan(None),
        pl.Series("z", fit.z).fill_nan(None), pl.Series("used", fit.used))
    return Onset(
        detected=onset_time is not None, metric=metric, onset=onset_time,
        baseline_value=pool(table.filter(in_b), metric), current_value=pool(table.filter(in_i), metric),
        severity=fit.severity, effect=fit.effect, threshold=fit.threshold, baseline=baseline, incident=incident,
        label_delay_hours=round(delayed * (step / timedelta(hours=1))), series=table, method=method)


def detect_onsets(case_or_series: Case | QualitySeries, metrics: tuple[str, ...] = ONSET_METRICS, **options: float) -> Onsets:
    """:func:`detect_onset` for several metrics on one quality series (one data pass).

    A calibration or label incident can show more clearly in the calibration ratio
    or the label rate than in NE; the contract's metric is NE (``.primary``).
    """
    series, _ = _as_series(case_or_series)
    return Onsets({m: detect_onset(series, m, **options) for m in metrics})
