"""A calibration shift in a series too thin for per-period fits, tested on its clicks' counts.

Why: :func:`workbench.data.onset.detect_onset` fits each period's log calibration ratio with a normal error, so it
uses only the periods that hold or expect ``MIN_FIT_COUNT`` clicks. A segment whose periods expect four or five
clicks has few such periods, and a collapse of its clicks empties exactly the ones that would show it (dev
``slice/collapse/27``: ``ad_format=playable`` expects about 4.5 clicks a day and got 8 in ten days against 45;
two of those days were usable, and its own grain, a week, holds under the three periods a shift needs). Counts need
no such floor. Under no change a period's clicks are Poisson with mean ``c e_t``, ``e_t`` the clicks the model
expects (its labelled rows' predictions summed) and ``c`` the series' calibration; given their total ``N`` they are
multinomial with shares ``e_t / sum e``, whatever ``c`` is.

Method (:func:`detect_count_shift`):

1. **Candidates**: the detector's shifts ``[s, s + L)`` (:func:`workbench.data.onset.candidate_shifts`) over the
   periods with labelled rows that are reliably labelled (:func:`workbench.data.onset.reliable_rows`); a shift of
   ``L`` periods that ends before the data do starts on every ``L // STRIDE``-th period only, and once the best is
   found its start is refined over the periods between (its end fixed). Every period keeps its own count, so a
   segment at 15 minutes over months is thousands of periods: every start of every length cost nine seconds a
   segment on 11,000 periods, the strided scan a fraction of that, and a long shift's onset is still found to the
   period.
2. **Statistic**: the signed root of the likelihood ratio of a click rate of the window's own against one rate for
   all (the temporal scan statistic of Kulldorff 1997, binomial given ``N``), ``sqrt(2 LLR)``; negative when the
   window holds fewer clicks than its expected share: its calibration ratio rose.
3. **Over-dispersion**: the calibration also wanders from day to day (a population the model does not see), which a
   thick segment's counts show. Pearson's ``X^2`` of the best window's two-rate fit over its degrees of freedom,
   floored at 1 (sampling error is the floor, never the measure), is the quasi-Poisson scale ``phi``; the severity is
   the best ``|statistic| / sqrt(phi)``.
4. **Decision**: the statistic is a maximum over many windows, so it is compared with the ``1 - alpha`` quantile of
   the same maximum over ``null_draws`` multinomial series with the same ``N`` and shares, put through steps 1-3
   (their tail extrapolated as the detector's, :func:`workbench.data.onset._critical`). Under the Poisson model the
   false-alarm rate is ``alpha``, the choice of the window included. The move must also be material as the
   detector's (:func:`workbench.data.onset.material`: 5% further from 1, by the lower one-sided 95% bound, its
   error the windows' binomial errors times ``sqrt(phi)``), between the windows the detector would report for it.
5. **Onset and end**: the best window's start; its stop when it stops ``MIN_AFTER_END`` periods or more before the
   data do (the rate after it is the rate before: it is one of the two), else the incident lasts.

Only the calibration ratio: NE and AUC of a few clicks have no such exact law.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import polars as pl

from workbench._render import fmt
from workbench.case.grain import grain_delta
from workbench.data.onset import (
    MIN_AFTER_END,
    MIN_LENGTH,
    NULL_DRAWS,
    MetricVerdict,
    Onset,
    _critical,
    _windows,
    candidate_shifts,
    floors_of,
    material,
    min_before,
    prediction_move,
    reliable_rows,
)
from workbench.data.quality import QualitySeries, pool
from workbench.metrics import calibration_log_se

__all__ = ["detect_count_shift"]

METRIC = "calibration_ratio"
STRIDE = 8  # a shift of L periods that ends before the data do starts on every (L // STRIDE)-th period (step 1)
CHUNK = 4_000_000  # candidate-by-draw cells per chunk of null draws (memory: 32 MB a float array)


class _Ratio:
    """Step 2's likelihood ratio for windows of fixed expected shares ``P`` of ``N`` clicks. Counts are whole, so
    ``LLR = T(Y) + T(N - Y) - T(N) - Y log P - (N - Y) log(1 - P)`` with ``T(k) = k log k`` read from a table: the
    null's hundred million windows cost gathers and products, not four logarithms each."""

    def __init__(self, total: int, share: np.ndarray) -> None:
        k = np.arange(total + 1, dtype=float)
        with np.errstate(divide="ignore"):
            self.table = np.where(k > 0, k * np.log(np.maximum(k, 1.0)), 0.0)
            self.share = np.clip(share, 1e-300, 1 - 1e-16)
            self.log_in, self.log_out = np.log(self.share), np.log1p(-self.share)
        self.total = total

    def llr(self, inside: np.ndarray) -> np.ndarray:
        """``LLR`` of integer window counts (arrays broadcast with the shares: candidates, or candidates by draws)."""
        n = self.total
        out = self.table[inside] + self.table[n - inside]
        out -= inside * self.log_in
        out -= (n - inside) * self.log_out
        out -= self.table[n]
        return out

    def signed_root(self, inside: np.ndarray) -> np.ndarray:
        """``sign(Y - N P) sqrt(2 LLR)``: negative when a window holds fewer clicks than its share."""
        return np.sign(inside - self.total * self.share) * np.sqrt(2 * np.maximum(self.llr(inside), 0.0))


def _signed_root(inside: np.ndarray, total: float, share: np.ndarray) -> np.ndarray:
    """Step 2 for whole counts ``inside`` out of ``total`` in windows of expected ``share``."""
    return _Ratio(round(total), share).signed_root(np.rint(inside).astype(np.int64))


def _dispersion(inside: np.ndarray, share: np.ndarray, q_inside: np.ndarray, q_total: np.ndarray, total: float,
                df: int) -> np.ndarray:
    """Step 3: Pearson's ``X^2 / df`` of the two-rate fit of a window (floored at 1). With ``mu_t = N pi_t c`` (``c``
    the window's or the rest's rate relative to one rate for all), ``X^2 = sum y^2 / mu - N``; ``q`` are the sums of
    ``y^2 / pi`` inside the window and over all periods, so it costs two prefix sums, not a pass per window."""
    with np.errstate(divide="ignore", invalid="ignore"):
        c_in = inside / (total * share)
        c_out = (total - inside) / (total * (1 - share))
        x2 = (np.where(inside > 0, q_inside / (total * c_in), 0.0)
              + np.where(total - inside > 0, (q_total - q_inside) / (total * c_out), 0.0) - total)
    return np.maximum(np.nan_to_num(x2 / max(df, 1), nan=1.0), 1.0)


def _strided(starts: np.ndarray, stops: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Step 1: the shifts that end before the data do, each length on every ``L // STRIDE``-th start."""
    stride = np.maximum((stops - starts) // STRIDE, 1)
    keep = (stops == n) | (starts % stride == 0)
    return starts[keep], stops[keep]


def _refined(cum: np.ndarray, cum_share: np.ndarray, total: float, start: int, stop: int, n: int, before: int
             ) -> tuple[int, int]:
    """The best shift's start among the periods its stride skipped, its end fixed (step 1)."""
    stride = max((stop - start) // STRIDE, 1) if stop < n else 1
    near = np.arange(max(start - stride + 1, before), min(start + stride, stop - MIN_LENGTH + 1))
    if len(near) <= 1:
        return start, stop
    stat = _signed_root(cum[stop] - cum[near], total, cum_share[stop] - cum_share[near])
    return int(near[int(np.argmax(np.abs(stat)))]), stop


def _null_maxima(shares: np.ndarray, total: int, starts: np.ndarray, stops: np.ndarray, draws: int) -> np.ndarray:
    """Step 4: the best scaled statistic of ``draws`` multinomial series (sorted)."""
    rng = np.random.default_rng(20261207)
    cum_share = np.concatenate([[0.0], np.cumsum(shares)])
    ratio = _Ratio(total, (cum_share[stops] - cum_share[starts])[:, None])
    df = len(shares) - 2
    out = np.empty(draws)
    chunk = max(1, min(draws, CHUNK // max(len(starts) + len(shares), 1)))
    for lo in range(0, draws, chunk):
        counts = rng.multinomial(total, shares, size=min(chunk, draws - lo)).T  # periods x draws
        cum = np.vstack([np.zeros((1, counts.shape[1]), dtype=np.int64), np.cumsum(counts, axis=0)])
        sq = np.vstack([np.zeros((1, counts.shape[1])), np.cumsum(counts**2 / shares[:, None], axis=0)])
        inside = cum[stops] - cum[starts]
        llr = ratio.llr(inside)
        best = np.argmax(llr, axis=0)
        cols = np.arange(llr.shape[1])
        q_inside = sq[stops[best], cols] - sq[starts[best], cols]
        phi = _dispersion(inside[best, cols].astype(float), ratio.share[best, 0], q_inside, sq[-1], total, df)
        out[lo: lo + len(cols)] = np.sqrt(2 * np.maximum(llr[best, cols], 0.0) / phi)
    return np.sort(out)


def detect_count_shift(series: QualitySeries, *, alpha: float = 0.001, null_draws: int = NULL_DRAWS) -> Onset:
    """Whether ``series``' calibration ratio shifted beyond its counts' noise, from when and until when (see the module
    docstring; family-wise ``alpha`` over the windows scanned, under the Poisson model with its over-dispersion).

    The result is the detector's :class:`~workbench.data.onset.Onset` of the calibration ratio, its ``series`` per
    period: the ratio, the one the model of no change expects, the Pearson residual, and whether the period was used.
    """
    table = series.table.sort("window")
    every = series.every
    step = grain_delta(every)
    grain_hours = step / timedelta(hours=1)
    label_end, delayed = reliable_rows(table)
    labelled = table["labeled"].cast(pl.Float64).to_numpy()
    expected = table["pred_sum_labeled"].cast(pl.Float64).fill_null(0.0).to_numpy()
    clicks = table["positives"].cast(pl.Float64).fill_null(0.0).to_numpy()
    rows = np.flatnonzero((np.arange(table.height) < label_end) & (labelled > 0))
    y = clicks[rows]
    # a period whose predictions collapsed to nothing still expects a little: its clicks are then the evidence
    e = np.maximum(expected[rows], 1e-9 * labelled[rows])
    total = float(y.sum())
    starts, stops = _strided(*candidate_shifts(len(rows), min_before(grain_hours)), len(rows))
    first = table["window"][0]
    last_end = table["window"][max(label_end - 1, 0)] + step
    delay_hours = round(delayed * grain_hours)
    if not len(starts) or total < 1:
        baseline, incident = _windows(None, last_end, first, every)
        verdict = MetricVerdict(METRIC, pool(table.filter(baseline.contains("window")), METRIC),
                                pool(table.filter(incident.contains("window")), METRIC), False, tested=False)
        return Onset(detected=False, metric=METRIC, onset=None, baseline_value=verdict.baseline,
                     current_value=verdict.current, severity=math.nan, effect=math.nan, threshold=math.nan,
                     baseline=baseline, incident=incident, label_delay_hours=delay_hours, series=table, grain=every,
                     metrics=(verdict,), method="calibration_ratio per count: too few periods or clicks to scan")
    shares = e / e.sum()
    cum = np.concatenate([[0.0], np.cumsum(y)])
    cum_share = np.concatenate([[0.0], np.cumsum(shares)])
    sq = np.concatenate([[0.0], np.cumsum(y**2 / shares)])
    inside, window_share = cum[stops] - cum[starts], cum_share[stops] - cum_share[starts]
    stat = _signed_root(inside, total, window_share)
    best = int(np.argmax(np.abs(stat)))
    phi = float(_dispersion(inside[best:best + 1], window_share[best:best + 1], sq[stops[best]:stops[best] + 1]
                            - sq[starts[best]:starts[best] + 1], sq[-1], total, len(rows) - 2)[0])
    severity = abs(float(stat[best])) / math.sqrt(phi)
    threshold = _critical(_null_maxima(shares, round(total), starts, stops, null_draws), alpha)
    start, stop = _refined(cum, cum_share, total, int(starts[best]), int(stops[best]), len(rows), min_before(grain_hours))
    onset_time = table["window"][int(rows[start])]
    ended = stop <= len(rows) - MIN_AFTER_END
    end_time = table["window"][int(rows[stop])] if ended else None
    baseline, incident = _windows(onset_time, end_time or last_end, first, every)
    tb, ti = table.filter(baseline.contains("window")), table.filter(incident.contains("window"))
    before, after = pool(tb, METRIC), pool(ti, METRIC)
    errors = [float(calibration_log_se(np.array([float(t["labeled"].sum())]), np.array([float(t["pred_sum_labeled"].sum())]),
                                       np.array([float(t["positives"].sum())]))[0]) if t.height else math.nan for t in (tb, ti)]
    se = math.sqrt(phi * (errors[0] ** 2 + errors[1] ** 2))
    significant = severity >= threshold
    regressed = bool(significant and math.isfinite(se) and material(METRIC, before, after, se, prediction_move(tb, ti)))
    effect = after / before - 1 if before > 0 and math.isfinite(after) else math.nan
    verdict = MetricVerdict(METRIC, before, after, regressed, severity, threshold, effect, floors_of(METRIC, effect),
                            onset_time if regressed else None, end_time if regressed else None, True, math.sqrt(phi))
    # per period: the ratio, the one the model of no change expects (one rate for all), the Pearson residual
    rate = total / e.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(y > 0, e / y, np.nan)
    columns = {name: np.full(table.height, np.nan) for name in ("value", "expected", "z")}
    columns["value"][rows] = ratio
    columns["expected"][rows] = 1 / rate
    columns["z"][rows] = (y - rate * e) / np.sqrt(phi * rate * e)
    used = np.zeros(table.height, dtype=bool)
    used[rows] = True
    table = table.with_columns(*(pl.Series(k, v).fill_nan(None) for k, v in columns.items()), pl.Series("used", used))
    method = (f"calibration_ratio per {every}, on its clicks' counts: a shift on [onset, end) scanned over onsets and a "
              f"ladder of lengths by the signed root of its likelihood ratio (Poisson, given the total), over the "
              f"quasi-Poisson dispersion {fmt(phi, 2)} (floored at 1) vs the {1 - alpha:.3%} quantile of its null "
              f"maximum ({null_draws} multinomial draws); materiality x1.05 further from 1 (or moved across it by the "
              f"predictions)")
    return Onset(detected=regressed, metric=METRIC, onset=onset_time if regressed else None, baseline_value=before,
                 current_value=after, severity=severity, effect=effect, threshold=threshold, baseline=baseline,
                 incident=incident, label_delay_hours=delay_hours, series=table, method=method,
                 end=end_time if regressed else None, grain=every, metrics=(verdict,))
