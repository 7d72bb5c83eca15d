"""Re-score logged rows with the case's model: two counterfactuals that separate causes.

* **Snapshot swap** — score the incident rows with the snapshot that served them
  and with the one that served the baseline. The NE difference between the two
  re-scorings is the snapshot's own share of the regression: both use the same
  logged features, so a feature break or a serving-side change cancels out.
* **Serving consistency** — score rows with the snapshot that served them and
  compare with the logged prediction. In a healthy system the two agree; when they
  agree in the baseline and not in the incident, something between the model and
  the log changed (a calibration or post-processing layer), since a broken feature
  or a bad snapshot changes both the same way.
* **Unexplained shift** (model-free serving consistency) — without a model, a
  surrogate of the logged logit fitted on baseline rows stands in for it: re-scoring
  the incident's rows with it gives the prediction shift their inputs explain, and
  what is left of the logged shift is the part no input explains (a calibration or
  post-processing change, or a new snapshot). Only rows inside the baseline's support
  count, where the surrogate has seen such values.
* **Labels from the inputs** (model-free) — a classifier of the *label* fitted on baseline
  rows is the world's ``P(label | inputs)`` as it was. Its mean on the incident's rows is
  the label rate the new population would have had if that relation held: a population
  that moved (more premium users) moves the labels through it; a logging bug does not.

The first two use a uniform sample of labeled rows (``sample`` rows per window) for speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from workbench.case.columns import LABEL, PREDICTION, SNAPSHOT, TS
from workbench.case.loader import Case
from workbench.metrics import entropy, logit, normalized_entropy, row_log_loss, two_proportion_se
from workbench.model.load import feature_matrix, load_model, score
from workbench.windows import Window

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sklearn.ensemble import HistGradientBoostingClassifier

__all__ = ["InputsLabelShift", "ServingConsistency", "SnapshotSwap", "UnexplainedShift", "label_classifier",
           "labels_from_inputs", "sample_window", "serving_consistency", "snapshot_loss", "snapshot_swap",
           "unexplained_shift"]

RESOLVABLE = 15.0  # |logit| above this is float32 saturation (p within ~3e-7 of 0 or 1)


def sample_window(case: Case, window: Window, sample: int, *, seed: int = 0, labeled: bool = False) -> pl.DataFrame:
    """Up to ``sample`` uniform rows of ``window`` (only labelled ones with ``labeled``): prediction, label, snapshot
    and the features."""
    return _rows(case, window, sample, labeled=labeled, seed=seed)


def _rows(case: Case, window: Window, sample: int, labeled: bool, seed: int = 0, where: pl.Expr | None = None) -> pl.DataFrame:
    lf = case.predictions.filter(window.contains())
    if where is not None:
        lf = lf.filter(where)
    if labeled:
        lf = lf.filter(pl.col(LABEL).is_not_null())
    frame = lf.select(TS, PREDICTION, LABEL, SNAPSHOT, *case.features).collect()
    return frame.sample(sample, seed=seed) if frame.height > sample else frame


def _rescore_by_snapshot(case: Case, frame: pl.DataFrame, snapshots: Iterable[str | None]) -> np.ndarray:
    out = np.full(frame.height, np.nan)
    ids = frame[SNAPSHOT].to_numpy()
    for sid in snapshots:
        if sid is None:
            continue
        mask = ids == sid
        if mask.any():
            model = load_model(case, sid)
            assert case.model is not None  # load_model raised CaseError otherwise
            out[mask] = score(model, feature_matrix(frame.filter(pl.Series(mask)), case.features), case.model.output)
    return out


@dataclass(frozen=True, slots=True)
class SnapshotSwap:
    """Incident NE (or calibration) as logged, and re-scored with the serving snapshot(s) and with the baseline's.

    ``metric`` is the one the share is measured on: NE by default; the calibration ratio for a regression the
    calibration carries (NE hardly moves when the predictions are 1.4 times too high at a 0.2 % click rate, and a
    share of an NE rise of 0.9 % is noise: an outside test's snapshot "accounted for at most 21 %" of it). Then ``z``
    and ``se`` are the calibration's, the worsening is :func:`workbench.data.onset.worsening`'s on the log scale, and
    the paired difference has no label noise: the same rows and labels under both snapshots."""

    served: tuple[str, ...]
    replacement: str
    ne_baseline: float  # logged, baseline window
    ne_logged: float  # logged, incident window
    ne_rescored: float  # incident rows re-scored with the snapshot(s) that served them
    ne_swapped: float  # incident rows re-scored with the baseline's snapshot
    rows: int
    z: float  # paired z of (rescored - swapped) on ``metric``: the same rows under both snapshots
    se: float = math.nan  # standard error of that paired difference (NE units; log units for the calibration)
    metric: str = "normalized_entropy"
    cal_baseline: float = math.nan  # calibration ratios (mean prediction / label rate), as the NE fields
    cal_logged: float = math.nan
    cal_rescored: float = math.nan
    cal_swapped: float = math.nan
    cal_worse: float = math.nan  # the logged incident's calibration worsening over the baseline (log units)
    cal_gain: float = math.nan  # how much worse the rescored calibration is than the swapped one (log units)
    cal_worse_se: float = math.nan  # label noise of ``cal_worse``: sqrt(1/clicks before + 1/clicks after) (log units)

    @property
    def calibration(self) -> bool:
        return self.metric == "calibration_ratio"

    @property
    def regression(self) -> float:
        """The incident's NE rise (or calibration worsening) over the baseline, logged: what the share is a share of."""
        return self.cal_worse if self.calibration else self.ne_logged - self.ne_baseline

    @property
    def recovered(self) -> float:
        """The snapshot's share of the regression: (rescored − swapped) / (logged − baseline); ~1 means it is the cause."""
        if not math.isfinite(self.regression):  # no clicks, or no labels: nothing to share (the check says so)
            return math.nan
        if self.regression <= 1e-9:
            return 0.0
        gain = self.cal_gain if self.calibration else self.ne_rescored - self.ne_swapped
        return float(gain / self.regression)

    @property
    def recovered_bound(self) -> float:
        """An upper bound of :attr:`recovered`, two standard errors above it: the most of the regression the snapshot
        can account for (infinite when there is no regression to share or no error to bound it with). On the
        calibration the share's error holds the regression's own label noise too (``cal_worse_se``, by the delta
        method of a ratio): at a few dozen clicks a window it dominates the paired difference, and the paired error
        alone missed a true cause's share one time in ten (a review's simulation at a 0.2 % click rate)."""
        if not self.regression > 1e-9 or not math.isfinite(self.se):
            return math.inf
        spread = math.hypot(self.se, self.recovered * self.cal_worse_se) if self.calibration else self.se
        return self.recovered + 2.0 * spread / self.regression if math.isfinite(spread) else math.inf

    def to_dict(self) -> dict:
        return {"served": list(self.served), "replacement": self.replacement, "ne_baseline": self.ne_baseline,
                "ne_logged": self.ne_logged, "ne_rescored": self.ne_rescored, "ne_swapped": self.ne_swapped,
                "recovered": self.recovered, "rows": self.rows, "z": self.z, "se": self.se, "metric": self.metric,
                "cal_baseline": self.cal_baseline, "cal_logged": self.cal_logged, "cal_rescored": self.cal_rescored,
                "cal_swapped": self.cal_swapped}

    def __str__(self) -> str:
        if self.calibration:
            return (f"incident calibration ratio {self.cal_rescored:.3f} with {', '.join(self.served)} vs "
                    f"{self.cal_swapped:.3f} with {self.replacement} (logged {self.cal_logged:.3f}, baseline "
                    f"{self.cal_baseline:.3f}): the snapshot accounts for {self.recovered:.0%} of the regression "
                    f"(paired z {self.z:.1f})")
        return (f"incident NE {self.ne_rescored:.4f} with {', '.join(self.served)} vs {self.ne_swapped:.4f} with "
                f"{self.replacement} (logged {self.ne_logged:.4f}, baseline {self.ne_baseline:.4f}): the snapshot accounts "
                f"for {self.recovered:.0%} of the regression (paired z {self.z:.1f})")


def snapshot_swap(case: Case, baseline: Window, incident: Window, *, sample: int = 20_000,
                  where: pl.Expr | None = None, metric: str = "normalized_entropy") -> SnapshotSwap | None:
    """Score labeled incident rows with the snapshot that served most of the baseline.

    Returns None when the incident was served by that same snapshot (nothing to swap).
    Rows whose snapshot is unknown are left out of both re-scorings. ``where`` keeps the
    rows of one segment in both windows (where a regression confined to it lives). ``metric``: the share is measured
    on NE, or on the calibration ratio (``"calibration_ratio"``, :class:`SnapshotSwap`).
    """
    base = _rows(case, baseline, sample, labeled=True, where=where)
    inc = _rows(case, incident, sample, labeled=True, seed=1, where=where)
    if base.height == 0 or inc.height == 0:
        return None
    replacement = base[SNAPSHOT].drop_nulls().mode().sort()[0] if base[SNAPSHOT].null_count() < base.height else None
    served = tuple(sorted(set(inc[SNAPSHOT].drop_nulls().to_list()) - {replacement}))
    if replacement is None or not served:
        return None
    model = load_model(case, replacement)
    assert case.model is not None  # load_model raised CaseError otherwise
    swapped = score(model, feature_matrix(inc, case.features), case.model.output)
    rescored = _rescore_by_snapshot(case, inc, inc[SNAPSHOT].unique().to_list())
    # A snapshot whose output is not finite (a NaN in a tensor) did not serve NaN: serving fell back to something,
    # and the log holds what it was. Those rows compare the logged prediction with the swap.
    served_rows = inc[SNAPSHOT].is_in(list(served)).to_numpy()
    rescored = np.where(served_rows & ~np.isfinite(rescored), inc[PREDICTION].to_numpy(), rescored)
    ok = np.isfinite(rescored) & np.isfinite(swapped)
    y = inc[LABEL].to_numpy()
    # Paired: the same rows under both snapshots, so the per-row loss difference has a plain standard error.
    diff = row_log_loss(rescored[ok], y[ok]) - row_log_loss(swapped[ok], y[ok])
    se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.inf
    swap = SnapshotSwap(served=served, replacement=replacement,
                        ne_baseline=normalized_entropy(base[PREDICTION].to_numpy(), base[LABEL].to_numpy()),
                        ne_logged=normalized_entropy(inc[PREDICTION].to_numpy(), y),
                        ne_rescored=normalized_entropy(rescored[ok], y[ok]), ne_swapped=normalized_entropy(swapped[ok], y[ok]),
                        rows=int(ok.sum()), z=float(diff.mean() / se) if len(diff) > 1 and se > 0 else 0.0,
                        se=float(se / entropy(float(y[ok].mean()))) if ok.any() else math.nan)
    if metric != "calibration_ratio":
        return swap
    return _on_calibration(swap, base[PREDICTION].to_numpy(), base[LABEL].to_numpy(), inc[PREDICTION].to_numpy(), y,
                           rescored[ok], swapped[ok], y[ok])


def _on_calibration(swap: SnapshotSwap, p_base: np.ndarray, y_base: np.ndarray, p_inc: np.ndarray, y_inc: np.ndarray,
                    rescored: np.ndarray, swapped: np.ndarray, y: np.ndarray) -> SnapshotSwap:
    """``swap`` measured on the calibration ratio (:class:`SnapshotSwap`): each reading's worsening over the baseline
    by :func:`workbench.data.onset.worsening` (the predictions' own move beside it), and the paired difference of the
    re-scored and swapped log ratios, whose standard error (the delta method over the rows) carries no label noise."""
    from dataclasses import replace

    from workbench.data.onset import worsening

    def ratio(p: np.ndarray, labels: np.ndarray) -> float:
        return float(p.mean() / labels.mean()) if len(p) and labels.mean() > 0 else math.nan

    cal_b = ratio(p_base, y_base)
    level, mean_b = math.log(cal_b) if cal_b > 0 else math.nan, float(p_base.mean()) if len(p_base) else math.nan

    def worse(p: np.ndarray, labels: np.ndarray) -> float:
        cal = ratio(p, labels)
        if not (cal > 0 and math.isfinite(level) and mean_b > 0 and p.mean() > 0):
            return math.nan
        return worsening("calibration_ratio", level, math.log(cal) - level, moved=math.log(p.mean() / mean_b))

    n = len(y)
    mr, ms = (float(rescored.mean()), float(swapped.mean())) if n else (math.nan, math.nan)
    se = float(np.std(rescored / mr - swapped / ms, ddof=1) / math.sqrt(n)) if n > 1 and mr > 0 and ms > 0 else math.nan
    gain = worse(rescored, y) - worse(swapped, y)
    clicks = float(y_base.sum()), float(y_inc.sum())
    noise = math.sqrt(1 / clicks[0] + 1 / clicks[1]) if min(clicks) > 0 else math.inf  # Poisson log rates
    return replace(swap, metric="calibration_ratio", cal_baseline=cal_b, cal_logged=ratio(p_inc, y_inc),
                   cal_rescored=ratio(rescored, y), cal_swapped=ratio(swapped, y), cal_worse=worse(p_inc, y_inc),
                   cal_gain=gain, cal_worse_se=noise, se=se, z=gain / se if se > 0 and math.isfinite(gain) else 0.0)


def snapshot_loss(case: Case, rows: pl.DataFrame, snapshot_id: str) -> float:
    """The mean per-row log loss of ``snapshot_id`` on labelled ``rows`` (:func:`sample_window`), over the label
    entropy: NE units. Two snapshots scored on the same rows differ by what the change between them did to those rows
    alone (serving history, features and labels are the same): ~0 for a benign refresh the weight diff happened to
    flag, the regression's share for the snapshot that broke the predictions. NaN without labelled rows."""
    if rows.height == 0:
        return math.nan
    assert case.model is not None
    y = rows[LABEL].to_numpy()
    p = score(load_model(case, snapshot_id), feature_matrix(rows, case.features), case.model.output)
    return float(row_log_loss(p, y).mean() / entropy(float(y.mean())))


@dataclass(frozen=True, slots=True)
class ServingConsistency:
    """How far logged predictions are from the model's own output, in logits, per window."""

    gap_baseline: float  # median |logit(logged) - logit(rescored)|
    gap_incident: float
    shift_incident: float  # median signed logit(logged) - logit(rescored) in the incident
    rows: int
    off_baseline: float = 0.0  # share of the baseline's rows whose |gap| exceeds ``tolerance``
    off_incident: float = 0.0  # the same share in the incident
    tolerance: float = 0.0  # the baseline's OFF_QUANTILE of |gap| (logits)
    baseline_rows: int = 0

    @property
    def changed(self) -> float:
        """How much the serving path moved, in logits, beyond its baseline gap."""
        return max(self.gap_incident - self.gap_baseline, 0.0)

    @property
    def off_changed(self) -> float:
        """The share of rows the serving path no longer scores as the model does, beyond the baseline's: a fallback or a
        transform on a part of the traffic (a constant for 30 % of the rows) leaves the median row as it was."""
        return max(self.off_incident - self.off_baseline, 0.0)

    @property
    def off_z(self) -> float:
        """``off_changed`` over its two-proportion standard error."""
        n_b, n_i = max(self.baseline_rows, 1), max(self.rows, 1)
        se = two_proportion_se((self.off_baseline * n_b + self.off_incident * n_i) / (n_b + n_i), n_b, n_i)
        return self.off_changed / se if se > 0 else 0.0

    def to_dict(self) -> dict:
        return {"gap_baseline": self.gap_baseline, "gap_incident": self.gap_incident,
                "shift_incident": self.shift_incident, "changed": self.changed, "rows": self.rows,
                "off_baseline": self.off_baseline, "off_incident": self.off_incident, "tolerance": self.tolerance}

    def __str__(self) -> str:
        return (f"logged vs re-scored predictions differ by {self.gap_baseline:.3f} logits in the baseline and "
                f"{self.gap_incident:.3f} in the incident (median); {self.off_incident:.1%} of the incident's rows and "
                f"{self.off_baseline:.1%} of the baseline's beyond the baseline's 99th percentile gap ({self.tolerance:.3f})")


def serving_consistency(case: Case, baseline: Window, incident: Window, *, sample: int = 5_000) -> ServingConsistency | None:
    """Compare logged predictions with the serving snapshot's own scores in both windows.

    A logged probability is only as fine as the log holds it: within float32 resolution of 0 or 1 it has no logit
    (a logged 1.0 and a re-scored 1 - 1e-7 differ by 0.18 logits with the same model), and a log rounded to three
    decimals writes 0 for anything under 0.0005. So both sides are read no further out than the log can resolve
    (:func:`_resolvable`): two values beyond it agree, and a serving path that logs 0 where the model says 0.12
    differs by 13 logits at the float32 limit (dropping saturated rows left nothing to compare there, and the answer
    named no cause).
    """
    frames = [_rows(case, window, sample, labeled=False, seed=2 + i) for i, window in enumerate((baseline, incident))]
    if any(frame.height == 0 for frame in frames):
        return None
    limit = _resolvable(np.concatenate([frame[PREDICTION].to_numpy().astype(np.float64) for frame in frames]))
    gaps = []
    for frame in frames:
        rescored = _rescore_by_snapshot(case, frame, frame[SNAPSHOT].unique().to_list())
        logged = frame[PREDICTION].to_numpy().astype(np.float64)
        ok = np.isfinite(rescored) & np.isfinite(logged)
        if ok.sum() == 0:
            return None
        gaps.append(np.clip(logit(logged[ok]), -limit, limit) - np.clip(logit(rescored[ok]), -limit, limit))
    tolerance = max(float(np.quantile(np.abs(gaps[0]), OFF_QUANTILE)), OFF_FLOOR)
    return ServingConsistency(gap_baseline=float(np.median(np.abs(gaps[0]))), gap_incident=float(np.median(np.abs(gaps[1]))),
                              shift_incident=float(np.median(gaps[1])), rows=len(gaps[1]),
                              off_baseline=float(np.mean(np.abs(gaps[0]) > tolerance)),
                              off_incident=float(np.mean(np.abs(gaps[1]) > tolerance)), tolerance=tolerance,
                              baseline_rows=len(gaps[0]))


OFF_QUANTILE = 0.99  # a row is off the model when its gap exceeds the baseline's 99th percentile gap ...
OFF_FLOOR = 1e-3  # ... and a thousandth of a logit (float32 noise in a path that logs the model's output)


def _resolvable(logged: np.ndarray) -> float:
    """How far out, in logits, the logged probabilities resolve: ``RESOLVABLE`` (float32), or less when the log
    holds them coarser: half its finest step from 0 or 1 (the smallest positive ``p`` or ``1 - p`` it holds; a log
    rounded to three decimals resolves to 0.0005, 7.6 logits)."""
    inner = logged[np.isfinite(logged) & (logged > 0) & (logged < 1)]
    if inner.size == 0:
        return RESOLVABLE
    step = float(min(inner.min(), 1.0 - inner.max()))
    return float(min(RESOLVABLE, math.log((1.0 - step / 2) / (step / 2))))


SUPPORT_QUANTILE = 0.001  # a value inside the baseline's [0.1%, 99.9%] range is one the surrogate has seen
SUPPORT_NULLS = 0.01  # a missing value is seen when at least 1% of the baseline's values were missing
USABLE_R2 = 0.8  # a surrogate explaining less of the logged logit cannot tell inputs from serving


@dataclass(frozen=True, slots=True)
class UnexplainedShift:
    """The logged prediction shift, in mean logits, split into what the inputs explain and what they do not."""

    total: float  # mean logit, incident - baseline (all rows)
    unexplained: float  # mean residual (logged - surrogate), incident rows in support - held-out baseline rows
    se: float  # standard error of ``unexplained``
    support: float  # share of the incident's rows inside the baseline's support
    r2: float  # the surrogate's R^2 on held-out baseline rows
    rows: int  # incident rows in support
    spread_baseline: float = math.nan  # variance of the residual within slice cells, held-out baseline rows
    spread_incident: float = math.nan  # variance of the residual within slice cells, the incident's rows in support
    spread_logit: float = math.nan  # variance of the logged logit on held-out baseline rows
    baseline_rows: int = 0  # held-out baseline rows

    @property
    def came_loose(self) -> float:
        """The share of the logged logit's variance the inputs explained before and no longer do: the residual's
        variance grew by that much, in units of the logit's own variance (0 when it did not grow). A serving path
        that changes row by row (a constant fallback, a lookup on the wrong key, a transform the log does not hold)
        leaves the mean where it was and this large; a broken input moves the predictions through the surrogate
        and leaves it near 0, and so do labels that came loose (the predictions still follow their inputs)."""
        if not (self.spread_logit > 0 and math.isfinite(self.spread_incident) and math.isfinite(self.spread_baseline)):
            return 0.0
        return max(self.spread_incident - self.spread_baseline, 0.0) / self.spread_logit

    @property
    def came_loose_z(self) -> float:
        """The residual variance's growth over its sampling error (the log variance ratio, normal approximation:
        error sqrt(2/n) on each side)."""
        if not (self.spread_baseline > 0 and self.spread_incident > 0 and self.rows > 1 and self.baseline_rows > 1):
            return 0.0
        return math.log(self.spread_incident / self.spread_baseline) / math.sqrt(2 / self.rows + 2 / self.baseline_rows)

    @property
    def explained(self) -> float:
        return self.total - self.unexplained

    @property
    def share(self) -> float:
        """Share of the prediction move the inputs do not explain: ``|u| / (|u| + |total - u|)``."""
        a, b = abs(self.unexplained), abs(self.explained)
        return a / (a + b) if a + b > 0 else 0.0

    @property
    def usable(self) -> bool:
        """Whether the split can be trusted: a surrogate with held-out R^2 of at least ``USABLE_R2``.

        However few of the incident's rows lie inside the baseline's support, their residual is measured where the
        surrogate stands on known ground, so it is the serving function's change on them, with the error ``se``
        its count gives (:func:`unexplained_shift` needs ``min_rows`` of them). Their share says how much of the
        window they stand for, not whether the residual is right: a feature that lost 93% of its values leaves 7%
        of rows untouched by the break, and their residual is the calibration layer's move beside it (dev
        multi/coverage_plus_calibration/17: -0.591 logits measured on 1,390 rows, -0.598 applied). A share floor
        of a half threw that away and left the break alone to explain a calibration shift."""
        return self.r2 >= USABLE_R2

    @property
    def margin(self) -> float:
        """``|unexplained|`` beyond what the surrogate's own error could have put there: its relative error on
        held-out baseline rows, ``sqrt(1 - R^2)``, times the move it explains. An input pushed to the edge of what
        the baseline held is extrapolated, and a 1% error on a 6-logit collapse is 0.06 logits no serving change made."""
        return max(abs(self.unexplained) - math.sqrt(max(1.0 - self.r2, 0.0)) * abs(self.explained), 0.0)

    @property
    def z(self) -> float:
        """The margin in standard errors."""
        return self.margin / self.se if self.se > 0 else 0.0

    def to_dict(self) -> dict:
        return {"total": self.total, "unexplained": self.unexplained, "se": self.se, "support": self.support,
                "r2": self.r2, "rows": self.rows, "came_loose": self.came_loose, "came_loose_z": self.came_loose_z}

    def __str__(self) -> str:
        return (f"the inputs explain {self.explained:+.3f} of the {self.total:+.3f} logit shift of the predictions, "
                f"{self.unexplained:+.3f} ± {self.se:.3f} is left unexplained, {self.margin:.3f} beyond the surrogate's own "
                f"error (model-free: a surrogate fitted on baseline rows, held-out R^2 {self.r2:.3f}, on the "
                f"{self.support:.0%} of incident rows inside the baseline's support)")


def _in_support(xb: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """Incident rows whose every value the baseline has seen: inside its [0.1%, 99.9%] range, or missing where the
    baseline's values were missing often enough for the surrogate to have learned where missing goes."""
    import warnings

    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # a column the baseline never filled has no range: NaN
        lo, hi = np.nanquantile(xb, [SUPPORT_QUANTILE, 1 - SUPPORT_QUANTILE], axis=0)
        inside = (xi >= lo) & (xi <= hi)
    missing_seen = np.isnan(xb).mean(0) >= SUPPORT_NULLS
    return np.where(np.isnan(xi), missing_seen, inside).all(axis=1)


def _with_clock(frame: pl.DataFrame, x: np.ndarray) -> np.ndarray:
    """``x`` with the hour of the day as one more input when the rows carry their time: a model's daily cycle comes
    from inputs the log does not hold (the hour, the traffic's context), and would otherwise be "unexplained"."""
    if TS not in frame.columns:
        return x
    ts = frame[TS]
    hour = (ts.dt.hour().cast(pl.Float64) + ts.dt.minute().cast(pl.Float64) / 60.0).to_numpy()
    return np.column_stack([x, hour])


def _within_cells(residual: np.ndarray, frame: pl.DataFrame, by: tuple[str, ...]) -> np.ndarray:
    """``residual`` less the mean of its slice cell (the combination of the ``by`` columns' values): what neither the
    inputs nor the segment a row belongs to explain."""
    cols = [c for c in by if c in frame.columns]
    if not cols:
        return residual - residual.mean()
    keys = frame.select(pl.struct(cols).rank("dense")).to_series().to_numpy().astype(np.int64)
    sums, counts = np.bincount(keys, weights=residual), np.bincount(keys)
    return residual - sums[keys] / np.maximum(counts[keys], 1)


def unexplained_shift(base: pl.DataFrame, inc: pl.DataFrame, features: tuple[str, ...], *, seed: int = 0,
                      min_rows: int = 500, by: tuple[str, ...] = ()) -> UnexplainedShift | None:
    """How much of the logged prediction shift between two windows' rows the logged inputs do not explain.

    A gradient-boosted surrogate of the logged logit (the feature isolation's,
    :func:`workbench.model.isolation._fit_surrogate`) is fitted on half the baseline rows: it is the serving
    function as it was. Its residual on the other half is the baseline's; its residual on the incident's rows
    inside the baseline's support is what changed in the serving function itself. A broken input moves the
    predictions through the surrogate too and leaves no residual; a calibration layer, a post-processing change
    or a new snapshot moves them past it. The hour of the day is an input too (when the rows carry their time). The
    residual of a row the surrogate never saw the like of (a value out of range, a missing value the baseline never
    had, an hour the baseline did not cover) is an extrapolation, so those rows are left out.

    None when fewer than ``min_rows`` rows remain on either side.
    """
    from threadpoolctl import threadpool_limits

    from workbench.model.isolation import _fit_surrogate, _raw

    xb, xi = _with_clock(base, _raw(base, features)), _with_clock(inc, _raw(inc, features))
    rng = np.random.default_rng(seed)
    held = rng.random(len(xb)) < 0.5
    ok = _in_support(xb[~held], xi)
    if held.sum() < min_rows or (~held).sum() < min_rows or ok.sum() < min_rows:
        return None
    zb, zi = logit(base[PREDICTION].to_numpy()), logit(inc[PREDICTION].to_numpy())
    fit = base.filter(pl.Series(~held))
    with threadpool_limits(limits=1, user_api="openmp"):
        surrogate, _ = _fit_surrogate(fit, fit.head(0), xb[~held], xb[:0], seed)
        rb = zb[held] - surrogate.predict(xb[held])
        ri = zi[ok] - surrogate.predict(xi[ok])
    r2 = float(1 - rb.var() / zb[held].var()) if zb[held].var() > 0 else math.nan
    # the residual's spread within slice cells: a segment's calibration shifted as one moves its cell's mean, a serving
    # path that changed row by row spreads the residual inside every cell
    wb, wi = _within_cells(rb, base.filter(pl.Series(held)), by), _within_cells(ri, inc.filter(pl.Series(ok)), by)
    return UnexplainedShift(total=float(zi.mean() - zb.mean()), unexplained=float(ri.mean() - rb.mean()),
                            se=math.sqrt(ri.var() / len(ri) + rb.var() / len(rb)), support=float(ok.mean()), r2=r2,
                            rows=int(ok.sum()), spread_baseline=float(np.mean(wb**2)), spread_incident=float(np.mean(wi**2)),
                            spread_logit=float(zb[held].var()), baseline_rows=int(held.sum()))


LABEL_EVENTS = 100  # labelled rows of each class the fitting rows need before a label model is fitted (as a refit)


def label_classifier(rows: int, seed: int = 0, categorical: np.ndarray | None = None) -> HistGradientBoostingClassifier:
    """The label model every model-free counterfactual of the label fits: boosted trees regularised for a few thousand
    rows (small leaves, early stopping on a fifth of the fitting rows); ``categorical`` marks the columns that are
    segment codes (:func:`_segment_codes`)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(learning_rate=0.1, max_iter=200, max_leaf_nodes=15, l2_regularization=1.0,
                                          min_samples_leaf=max(20, rows // 200), early_stopping=True,
                                          validation_fraction=0.2, n_iter_no_change=10, random_state=seed,
                                          categorical_features=categorical if categorical is not None and categorical.any()
                                          else None)


MAX_SEGMENT_CODES = 254  # a segment column with more values than this is no input of the label model (HGB's bins)


def _segment_codes(base: pl.DataFrame, inc: pl.DataFrame, slices: tuple[str, ...]
                   ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """The slice columns whose values recur, and each as codes 0, 1, ... of the baseline's values (most frequent
    first), in both windows.

    A column recurs when the baseline holds at most ``MAX_SEGMENT_CODES`` values and at least half of the incident's
    rows lie on one of them (a null counts as held when the baseline's nulls were common, ``SUPPORT_NULLS``). A column
    that follows the calendar (a date partition, the day of the week against a baseline of other days) describes when
    a row came, not who it is, and would leave every incident row outside the baseline's support. A value the
    baseline never had takes a code of its own past them, so it lies outside the baseline's support
    (:func:`_in_support`); a null is NaN, inside the support only where the baseline's nulls were common."""
    names: list[str] = []
    cols_b: list[np.ndarray] = []
    cols_i: list[np.ndarray] = []
    for name in slices:
        if name not in base.columns or name not in inc.columns:
            continue
        column = pl.col(name).cast(pl.String)
        rows = f"{name}_rows"  # value_counts names its count column; never the column's own name
        values = (base[name].cast(pl.String).drop_nulls().value_counts(name=rows)
                  .sort([rows, name], descending=[True, False])[name])
        nulls_seen = base[name].null_count() >= SUPPORT_NULLS * max(base.height, 1)
        recurring = inc.select(column.is_in(values.implode()).fill_null(nulls_seen).mean()).item()
        if not (0 < values.len() <= MAX_SEGMENT_CODES and (recurring or 0.0) >= 0.5):
            continue
        coded = (pl.when(column.is_null()).then(float("nan"))
                 .otherwise(column.replace_strict(values, np.arange(values.len(), dtype=np.float64),
                                                  default=float(values.len()), return_dtype=pl.Float64)))
        names.append(name)
        cols_b.append(base.select(coded).to_series().to_numpy())
        cols_i.append(inc.select(coded).to_series().to_numpy())
    if not names:
        return (), np.empty((base.height, 0)), np.empty((inc.height, 0))
    return tuple(names), np.column_stack(cols_b), np.column_stack(cols_i)


def varying(x: np.ndarray) -> np.ndarray:
    """Columns with two distinct finite values or more: a column all null (or constant) in the fitting rows carries
    nothing to learn, and sklearn's binning cannot place a threshold in it."""
    return np.array([len(np.unique(c[np.isfinite(c)])) > 1 for c in x.T], dtype=bool)


@dataclass(frozen=True, slots=True)
class InputsLabelShift:
    """The label rate's move between two windows' labelled rows, and the part of it the inputs predict."""

    observed: float  # log label-rate change: incident rows in support vs held-out baseline rows
    explained: float  # the same change of the baseline label model's mean prediction over the same rows
    rows: int  # incident rows in support
    support: float  # their share of the incident's labelled rows

    @property
    def share(self) -> float:
        """The share of the observed move the inputs predict, in [0, 1] (0 when they predict the other way)."""
        if not (math.isfinite(self.observed) and math.isfinite(self.explained)) or self.observed == 0:
            return 0.0
        return min(max(self.explained / self.observed, 0.0), 1.0)

    def to_dict(self) -> dict:
        return {"observed": self.observed, "explained": self.explained, "rows": self.rows, "support": self.support}

    def __str__(self) -> str:
        return (f"a label model fitted on baseline rows predicts {math.expm1(self.explained):+.1%} of the label rate's "
                f"{math.expm1(self.observed):+.1%} on the {self.support:.0%} of incident rows inside the baseline's support "
                f"({self.share:.0%} of the move comes with the inputs)")


def labels_from_inputs(base: pl.DataFrame, inc: pl.DataFrame, features: tuple[str, ...], *, slices: tuple[str, ...] = (),
                       seed: int = 0, min_events: int = LABEL_EVENTS) -> InputsLabelShift | None:
    """How much of the label rate's move between two windows' rows the inputs predict (module docstring).

    The label model is fitted on half the baseline's labelled rows (features, the segments a row belongs to and the
    hour of the day) and scored on the other half and on the incident's labelled rows inside the baseline's support
    (:func:`_in_support`: elsewhere the trees would extrapolate). The segments count because a traffic mix that moved
    towards a segment with another click rate moves the labels as much as any feature does, and a model that does not
    see the segment cannot follow it (dev control/traffic_mix/70: labels -20%, predictions flat, the inputs without
    ``platform`` predicted -2.7% and the labels were blamed). None when the fitting rows hold fewer than
    ``min_events`` of either class, or too few incident rows lie in the support.
    """
    from threadpoolctl import threadpool_limits

    from workbench.model.isolation import _raw

    base, inc = base.filter(pl.col(LABEL).is_not_null()), inc.filter(pl.col(LABEL).is_not_null())
    if not features or base.is_empty() or inc.is_empty():
        return None
    segments, sb, si = _segment_codes(base, inc, slices)
    xb, xi = _with_clock(base, np.column_stack([_raw(base, features), sb])), _with_clock(inc, np.column_stack([_raw(inc, features), si]))
    categorical = np.zeros(xb.shape[1], dtype=bool)
    categorical[len(features):len(features) + len(segments)] = True
    yb, yi = base[LABEL].cast(pl.Float64).to_numpy(), inc[LABEL].cast(pl.Float64).to_numpy()
    held = np.random.default_rng(seed).random(len(xb)) < 0.5
    fit_y = yb[~held]
    if min(fit_y.sum(), len(fit_y) - fit_y.sum()) < min_events or held.sum() < min_events:
        return None
    ok = _in_support(xb[~held], xi)
    if ok.sum() < min_events or yi[ok].sum() == 0 or yb[held].sum() == 0:
        return None
    keep = varying(xb[~held])
    if not keep.any():
        return None
    model = label_classifier(len(fit_y), seed, categorical[keep])
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(xb[~held][:, keep], fit_y)
        pb = float(model.predict_proba(xb[held][:, keep])[:, 1].mean())
        pi = float(model.predict_proba(xi[ok][:, keep])[:, 1].mean())
    return InputsLabelShift(observed=math.log(float(yi[ok].mean()) / float(yb[held].mean())), explained=math.log(pi / pb),
                            rows=int(ok.sum()), support=float(ok.mean()))
