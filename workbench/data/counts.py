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
   thick segment's counts show. The deviance of the best window's two-rate fit over its degrees of freedom, floored
   at 1 (sampling error is the floor, never the measure), is the quasi-Poisson scale ``phi``; the severity is the
   best ``|statistic| / sqrt(phi)``. The deviance, not Pearson's ``X^2``: one click in a night hour expecting 0.005
   adds 199 to ``X^2`` and 8.6 to the deviance, so a single stray click no longer hides a collapse elsewhere. It
   costs nothing: the deviance of the two-rate fit is the one-rate fit's less ``2 LLR``.
4. **Decision**: the statistic is a maximum over many windows, so it is compared with the ``1 - alpha`` quantile of
   the same maximum over ``null_draws`` series of no change put through steps 1-3 (their tail extrapolated as the
   detector's, :func:`workbench.data.onset._critical`): multinomial with the same ``N`` and shares when ``phi`` is
   1, else with the dispersion the series shows, each period's clicks Poisson with a gamma-distributed mean (negative
   binomial, variance ``phi`` times the mean). The draws estimate their own ``phi`` as the series did, so the noise
   of that estimate is paid for too: a null of pure multinomial draws alarmed on 0.8 % of series whose calibration
   wanders 10 % a day at a nominal 0.1 % (a review's count). Under that model the false-alarm rate is ``alpha``, the
   choice of the window included. The move must also be material as the detector's
   (:func:`workbench.data.onset.material`: 5% further from 1, by the lower one-sided 95% bound, its error the
   windows' binomial errors times ``sqrt(phi)``), between the windows the detector would report for it, each
   window's ratio counting at least half a click a side (:func:`workbench.data.quality.pool`).
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


def _xlogx(n: int) -> np.ndarray:
    """``T(k) = k log k`` for ``k = 0 .. n`` (``T(0) = 0``)."""
    k = np.arange(n + 1, dtype=float)
    return k * np.log(np.maximum(k, 1.0))


class _Ratio:
    """Step 2's likelihood ratio for windows of fixed expected shares ``P``. Counts are whole, so ``LLR = T(Y) +
    T(N - Y) - T(N) - Y log P - (N - Y) log(1 - P)`` with ``T(k) = k log k`` read from a table: the null's hundred
    million windows cost gathers and products, not four logarithms each."""

    def __init__(self, share: np.ndarray) -> None:
        self.share = np.clip(share, 1e-300, 1 - 1e-16)
        self.log_in, self.log_out = np.log(self.share), np.log1p(-self.share)

    def llr(self, inside: np.ndarray, total: np.ndarray | int, table: np.ndarray) -> np.ndarray:
        """``LLR`` of integer window counts out of ``total`` (a scalar, or one per draw: a row) clicks (arrays broadcast
        with the shares: candidates, or candidates by draws); ``table`` is :func:`_xlogx` up to the largest total."""
        out = table[inside] + table[total - inside]
        out -= inside * self.log_in
        out -= (total - inside) * self.log_out
        out -= table[total]
        return out


def _signed_root(inside: np.ndarray, total: float, share: np.ndarray) -> np.ndarray:
    """Step 2, ``sign(Y - N P) sqrt(2 LLR)`` of whole counts ``inside`` out of ``total`` in windows of expected
    ``share``: negative when a window holds fewer clicks than its share."""
    n = round(total)
    ratio = _Ratio(share)
    llr = ratio.llr(np.rint(inside).astype(np.int64), n, _xlogx(n))
    return np.sign(inside - n * ratio.share) * np.sqrt(2 * np.maximum(llr, 0.0))


def _dispersion(one_rate_deviance: np.ndarray, llr: np.ndarray, df: int) -> np.ndarray:
    """Step 3: the two-rate fit's deviance (the one-rate fit's, ``2 (sum T(y) - sum y log pi - T(N))``, less ``2 LLR``)
    over ``df``, floored at 1."""
    return np.maximum((one_rate_deviance - 2 * llr) / max(df, 1), 1.0)


def _one_rate_deviance(counts: np.ndarray, log_shares: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``2 (sum T(y) - sum y log pi - T(N))`` per column of integer ``counts`` (periods by draws, or one series)."""
    total = counts.sum(axis=0)
    return 2 * (table[counts].sum(axis=0) - (counts * (log_shares if counts.ndim == 1 else log_shares[:, None])).sum(axis=0)
                - table[total])


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


def _null_maxima(shares: np.ndarray, total: int, phi: float, starts: np.ndarray, stops: np.ndarray, draws: int
                 ) -> np.ndarray:
    """Step 4: the best scaled statistic of ``draws`` series of no change (sorted): multinomial when ``phi`` is 1,
    else negative binomial with variance ``phi`` times the mean."""
    rng = np.random.default_rng(20261207)
    cum_share = np.concatenate([[0.0], np.cumsum(shares)])
    ratio = _Ratio((cum_share[stops] - cum_share[starts])[:, None])
    log_shares = np.log(shares)
    mean = total * shares
    df = len(shares) - 2
    out = np.empty(draws)
    chunk = max(1, min(draws, CHUNK // max(len(starts) + len(shares), 1)))
    for lo in range(0, draws, chunk):
        size = min(chunk, draws - lo)
        if phi > 1:  # a gamma-distributed mean per period: shape mean / (phi - 1), scale phi - 1
            counts = rng.poisson(rng.gamma(mean[:, None] / (phi - 1), phi - 1, size=(len(shares), size)))
        else:
            counts = rng.multinomial(total, shares, size=size).T  # periods x draws
        table = _xlogx(int(counts.sum(axis=0).max()))
        cum = np.vstack([np.zeros((1, size), dtype=np.int64), np.cumsum(counts, axis=0)])
        llr = ratio.llr(cum[stops] - cum[starts], cum[-1][None, :], table)
        best = np.argmax(llr, axis=0)
        top = llr[best, np.arange(size)]
        scale = _dispersion(_one_rate_deviance(counts, log_shares, table), top, df)
        out[lo: lo + size] = np.sqrt(2 * np.maximum(top, 0.0) / scale)
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
    counts = np.rint(y).astype(np.int64)
    n_clicks = int(counts.sum())
    before = min_before(grain_hours)
    starts, stops = _strided(*candidate_shifts(len(rows), before), len(rows))
    first = table["window"][0]
    last_end = table["window"][max(label_end - 1, 0)] + step
    delay_hours = round(delayed * grain_hours)
    if not len(starts) or n_clicks < 1:
        baseline, incident = _windows(None, last_end, first, every)
        verdict = MetricVerdict(METRIC, pool(table.filter(baseline.contains("window")), METRIC),
                                pool(table.filter(incident.contains("window")), METRIC), False, tested=False)
        return Onset(detected=False, metric=METRIC, onset=None, baseline_value=verdict.baseline,
                     current_value=verdict.current, severity=math.nan, effect=math.nan, threshold=math.nan,
                     baseline=baseline, incident=incident, label_delay_hours=delay_hours, series=table, grain=every,
                     metrics=(verdict,), method="calibration_ratio per count: too few periods or clicks to scan")
    shares = e / e.sum()
    cum = np.concatenate([[0], np.cumsum(counts)])
    cum_share = np.concatenate([[0.0], np.cumsum(shares)])
    windows, table_k = _Ratio(cum_share[stops] - cum_share[starts]), _xlogx(n_clicks)
    llr = windows.llr(cum[stops] - cum[starts], n_clicks, table_k)
    best = int(np.argmax(llr))
    phi = float(_dispersion(_one_rate_deviance(counts, np.log(shares), table_k), llr[best], len(rows) - 2))
    severity = math.sqrt(2 * max(float(llr[best]), 0.0) / phi)
    threshold = _critical(_null_maxima(shares, n_clicks, phi, starts, stops, null_draws), alpha)
    start, stop = _refined(cum, cum_share, n_clicks, int(starts[best]), int(stops[best]), len(rows), before)
    onset_time = table["window"][int(rows[start])]
    ended = stop <= len(rows) - MIN_AFTER_END
    end_time = table["window"][int(rows[stop])] if ended else None
    baseline, incident = _windows(onset_time, end_time or last_end, first, every)
    tb, ti = table.filter(baseline.contains("window")), table.filter(incident.contains("window"))
    level, after = pool(tb, METRIC), pool(ti, METRIC)
    errors = [float(calibration_log_se(np.array([float(t["labeled"].sum())]), np.array([float(t["pred_sum_labeled"].sum())]),
                                       np.array([float(t["positives"].sum())]))[0]) if t.height else math.nan for t in (tb, ti)]
    se = math.sqrt(phi * (errors[0] ** 2 + errors[1] ** 2))
    significant = severity >= threshold
    regressed = bool(significant and math.isfinite(se) and material(METRIC, level, after, se, prediction_move(tb, ti)))
    effect = after / level - 1 if level > 0 and math.isfinite(after) else math.nan
    verdict = MetricVerdict(METRIC, level, after, regressed, severity, threshold, effect, floors_of(METRIC, effect),
                            onset_time if regressed else None, end_time if regressed else None, True, math.sqrt(phi))
    # per period: the ratio, the one the model of no change expects (one rate for all), the Pearson residual
    rate = n_clicks / e.sum()
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
              f"quasi-Poisson dispersion {fmt(phi, 2)} (deviance, floored at 1) vs the {1 - alpha:.3%} quantile of its "
              f"null maximum ({null_draws} draws of no change with that dispersion); materiality x1.05 further from 1 "
              f"(or moved across it by the predictions)")
    return Onset(detected=regressed, metric=METRIC, onset=onset_time if regressed else None, baseline_value=level,
                 current_value=after, severity=severity, effect=effect, threshold=threshold, baseline=baseline,
                 incident=incident, label_delay_hours=delay_hours, series=table, method=method,
                 end=end_time if regressed else None, grain=every, metrics=(verdict,))
