"""workbench.data.counts: a thin series's calibration shift, scanned on its clicks' counts. The statistic is the
likelihood ratio (checked against scipy), its false-alarm rate is the alpha it is run at on Poisson series, the
calibration's own wander from day to day does not pass for a shift, and a thin segment's collapse that the
per-period fit cannot see is found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from workbench.data.counts import _signed_root, detect_count_shift
from workbench.data.quality import QualitySeries


def _series(clicks: np.ndarray, expected: np.ndarray, every: str = "1d") -> QualitySeries:
    """A quality series of one period per element: ``clicks`` positives where the model expects ``expected``."""
    n = len(clicks)
    step = {"1d": timedelta(days=1), "1h": timedelta(hours=1)}[every]
    start = datetime(2026, 3, 1, tzinfo=UTC)
    zeros = [0.0] * n
    table = pl.DataFrame({"window": [start + k * step for k in range(n)], "rows": [1_000] * n, "labeled": [1_000] * n,
                          "label_join_rate": [1.0] * n, "positives": np.asarray(clicks, dtype=np.int64),
                          "pred_sum": np.asarray(expected, dtype=float), "pred_sq_sum": zeros,
                          "pred_sum_labeled": np.asarray(expected, dtype=float), "ll_sum": zeros, "ll_sq_sum": zeros,
                          "ll_pos_sum": zeros})
    table = table.with_columns((pl.col("pred_sum_labeled") / pl.col("positives")).alias("calibration_ratio"))
    return QualitySeries(table=table, every=every, by=())


def test_the_statistic_is_the_signed_root_of_the_likelihood_ratio():
    """``sqrt(2 LLR)`` of a window's clicks against its expected share is the G statistic of the 2-cell table (inside,
    outside) against the shares, as scipy computes it; its sign says whether the window holds fewer clicks."""
    from scipy.stats import power_divergence

    for inside, total, share in [(3, 60, 0.25), (31, 60, 0.25), (0, 45, 0.2), (45, 45, 0.9)]:
        g = power_divergence([inside, total - inside], [total * share, total * (1 - share)], lambda_="log-likelihood")
        z = float(_signed_root(np.array([float(inside)]), float(total), np.array([share]))[0])
        assert z**2 == pytest.approx(g.statistic, rel=1e-9)
        assert np.sign(z) == np.sign(inside - total * share)


def test_a_thin_series_collapse_is_found_where_the_per_period_fit_has_no_usable_period():
    """Five clicks expected a day and, from day 26, about one in five of them: the per-period fit keeps only days with
    five clicks (expected or observed) and 4.8 expected is under that, so it sees nothing; the counts see the
    collapse from its first day."""
    from workbench.data.onset import detect_onset

    rng = np.random.default_rng(3)
    expected = np.full(40, 4.8)
    clicks = rng.poisson(np.where(np.arange(40) < 26, 4.8, 0.9))
    series = _series(clicks, expected)
    assert not detect_onset(series, ("calibration_ratio",)).detected
    found = detect_count_shift(series)
    assert found.detected and found.metric == "calibration_ratio", str(found)
    assert found.onset == series.table["window"][26] and found.end is None
    assert found.current_value > 3 * found.baseline_value
    # the same series without the collapse: nothing
    assert not detect_count_shift(_series(rng.poisson(expected), expected)).detected


def test_on_poisson_series_it_alarms_at_the_rate_it_is_run_at():
    """200 series of 60 days, each day Poisson with its own expected clicks (0.5 to 8, a different calibration per
    series): at alpha 0.05 the scan's maximum exceeds its threshold in about 5% of them (10 expected; 1.4 to 19 is the
    99.9% binomial range). The choice of the window is paid for, and a series of a few clicks does not over-alarm."""
    rng = np.random.default_rng(11)
    alarms = 0
    for _ in range(200):
        expected = rng.uniform(0.5, 8.0, 60)
        clicks = rng.poisson(expected * rng.uniform(0.5, 2.0))
        found = detect_count_shift(_series(clicks, expected), alpha=0.05, null_draws=400)
        alarms += found.severity >= found.threshold
    assert 2 <= alarms <= 19, alarms


def test_a_calibration_that_wanders_from_day_to_day_alarms_at_the_rate_it_is_run_at():
    """200 thick series (300 clicks expected a day) whose calibration wanders 10% from day to day: their counts are
    over-dispersed (deviance / df about 4). The null draws carry the dispersion the series shows and estimate their
    own, so at alpha 0.05 about 10 of them exceed the threshold (19 is the 99.7% binomial bound); a null of pure
    multinomial draws, as first written, let about 27 through (a review's count: 13.5%). A step of 40% on such a
    series is still found."""
    rng = np.random.default_rng(5)
    expected = np.full(60, 300.0)
    over, root_phi = [], []
    for _ in range(200):
        wander = np.exp(rng.normal(0, 0.1, 60))
        found = detect_count_shift(_series(rng.poisson(expected * wander), expected), alpha=0.05, null_draws=400)
        over.append(found.severity >= found.threshold)
        root_phi.append(found.metrics[0].sigma)
    assert np.median(root_phi) == pytest.approx(2.0, abs=0.25)  # phi = 1 + 300 * 0.1^2
    assert 2 <= sum(over) <= 19, sum(over)
    wander = np.exp(rng.normal(0, 0.1, 60))
    step = np.where(np.arange(60) < 40, 1.0, 0.6)
    found = detect_count_shift(_series(rng.poisson(expected * wander * step), expected), null_draws=400)
    assert found.detected and abs(found.onset - _series(step, expected).table["window"][40]) <= timedelta(days=1)


def test_every_click_lost_and_every_prediction_at_zero_are_regressions_not_errors():
    """A window with no click at all has no finite calibration ratio, and its materiality read False: a segment whose
    clicks all stopped was never detected (a review: severity 10.9 against 4.4, "no regression"). Each side now counts
    at least half a click. A segment whose predictions all fell to 0 raised a math domain error."""
    rng = np.random.default_rng(8)
    expected = np.full(40, 4.8)
    clicks = np.where(np.arange(40) < 26, rng.poisson(4.8, 40), 0)
    found = detect_count_shift(_series(clicks, expected))
    assert found.detected and found.onset == _series(clicks, expected).table["window"][26], str(found)
    assert found.current_value == pytest.approx(4.8 * 14 / 0.5, rel=0.3)  # the incident's windows hold 14 days at most
    zeroed = expected.copy()
    zeroed[30:] = 0.0
    found = detect_count_shift(_series(rng.poisson(4.8, 40), zeroed))
    assert found.detected and found.current_value < 0.1 * found.baseline_value, str(found)


def test_a_series_of_a_few_clicks_gets_a_threshold_not_nan():
    """With two clicks in 60 periods the null's top draws tie and the tail has no excess to extrapolate: the threshold
    is the largest draw, not NaN."""
    expected = np.full(60, 0.03)
    clicks = np.zeros(60, dtype=int)
    clicks[[5, 40]] = 1
    found = detect_count_shift(_series(clicks, expected))
    assert np.isfinite(found.threshold) and not found.detected


def test_one_click_where_the_model_expects_almost_none_does_not_hide_a_collapse():
    """Hourly periods expecting 0.005 clicks at night and 3 by day, the day's clicks gone for the last 30 hours. One
    click in one night hour added 199 to Pearson's X^2 (dispersion 1.45 over a series, a collapse missed in 26 of 100);
    the deviance adds 8.6, and the collapse is found with or without it."""
    hours = np.arange(240)
    expected = np.where((hours % 24) < 8, 0.005, 3.0)
    rng = np.random.default_rng(2)
    clicks = rng.poisson(np.where(hours < 210, expected, 0.1 * expected))
    series = _series(clicks, expected, "1h")
    assert detect_count_shift(series).detected
    night = int(np.flatnonzero((hours % 24) == 3)[2])
    stray = clicks.copy()
    stray[night] += 1
    found = detect_count_shift(_series(stray, expected, "1h"))
    assert found.detected and found.metrics[0].sigma == pytest.approx(1.0, abs=0.05), found.metrics[0].sigma


def test_a_thin_segments_collapse_below_its_own_grain_is_found_on_its_counts(tmp_path):
    """Proving ground dev slice/collapse/27: ad_format=playable expects about 4.5 clicks a day and from 05-19 got 8 in
    ten days. Its own grain is a week (under the three periods a shift needs); at the case's day the per-period fit
    had two usable incident days and read robust z 4.9 against 5.6. On the counts it is found, from the day after
    the onset (the incident began at 08:14 on 05-19)."""
    from tests.conftest import dev_case
    from workbench import open_case
    from workbench.data.segments import detect_segment_onset

    path, truth = dev_case(tmp_path, "slice", "collapse", 27)
    case = open_case(path)
    assert case.grain.grain == "1d"
    found = detect_segment_onset(case)
    assert found is not None and found.segment == truth["slice"] and found.onset.grain == "1d", str(found)
    onset = datetime.fromisoformat(truth["onset"].replace("Z", "+00:00"))
    assert abs(found.onset.onset - onset) <= timedelta(days=1)
