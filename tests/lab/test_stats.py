"""The lab's statistics against scipy.stats, and the noise threshold's false-positive rate."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as ss

from workbench.lab.stats import (
    bootstrap_ci,
    mann_whitney_u,
    noise_threshold,
    relative_median_delta,
    residuals,
    welch_t_test,
)

SIZES = [(3, 4), (5, 5), (8, 12), (10, 10), (20, 15), (4, 30)]
ALTERNATIVES = ["two-sided", "greater", "less"]


@pytest.mark.parametrize(("n_x", "n_y"), SIZES)
@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_welch_matches_scipy(n_x, n_y, alternative):
    rng = np.random.default_rng(n_x * 100 + n_y)
    x, y = rng.lognormal(0, 0.3, n_x), rng.lognormal(0.2, 0.1, n_y)
    ours = welch_t_test(x, y, alternative)
    ref = ss.ttest_ind(x, y, equal_var=False, alternative=alternative)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.pvalue == pytest.approx(ref.pvalue, rel=1e-9)
    assert ours.df == pytest.approx(ref.df, rel=1e-12)


@pytest.mark.parametrize(("n_x", "n_y"), SIZES)
@pytest.mark.parametrize("alternative", ALTERNATIVES)
@pytest.mark.parametrize("method", ["exact", "asymptotic", "auto"])
def test_mann_whitney_matches_scipy(n_x, n_y, alternative, method):
    rng = np.random.default_rng(n_x * 100 + n_y)
    x, y = rng.normal(0, 1, n_x), rng.normal(0.7, 1, n_y)
    ours = mann_whitney_u(x, y, alternative, method)
    ref = ss.mannwhitneyu(x, y, alternative=alternative, method=method)
    assert ours.statistic == pytest.approx(ref.statistic)
    assert ours.pvalue == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_mann_whitney_with_ties_matches_scipy(alternative):
    rng = np.random.default_rng(7)
    x, y = np.round(rng.normal(0, 1, 12), 1), np.round(rng.normal(0.4, 1, 14), 1)
    ours, ref = mann_whitney_u(x, y, alternative), ss.mannwhitneyu(x, y, alternative=alternative)
    assert ours.method == "asymptotic"  # ties rule out the exact distribution, as in scipy
    assert (ours.statistic, ours.pvalue) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-9)


def test_exact_distribution_is_exact_for_larger_samples():
    rng = np.random.default_rng(3)
    x, y = rng.normal(0, 1, 25), rng.normal(0.8, 1, 30)
    ours = mann_whitney_u(x, y, "less", "exact")
    assert ours.pvalue == pytest.approx(ss.mannwhitneyu(x, y, alternative="less", method="exact").pvalue, rel=1e-9)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="at least 2"):
        welch_t_test([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="alternative"):
        mann_whitney_u([1.0, 2.0], [1.0, 2.0], alternative="bigger")


def test_effect_size_and_interval():
    a, b = [1.0, 1.1, 0.9, 1.0, 1.05], [1.2, 1.3, 1.1, 1.2, 1.25]
    assert relative_median_delta(a, b) == pytest.approx(0.2)
    lo, hi = bootstrap_ci(a, b)
    assert lo < 0.2 < hi


def test_residuals_are_relative_and_df_corrected():
    r = residuals([1.0, 2.0, 3.0])
    assert r == pytest.approx(np.array([-0.5, 0.0, 0.5]) * np.sqrt(3 / 2))


def test_noise_threshold_holds_its_false_positive_rate():
    """A/A experiments on log-normal timings: |relative median delta| exceeds the threshold ~fpr of the time."""
    rng = np.random.default_rng(11)
    n, fpr, trials, exceed = 10, 0.1, 400, 0
    for _ in range(trials):
        a, b = rng.lognormal(0, 0.08, n), rng.lognormal(0, 0.08, n)
        threshold = noise_threshold(np.concatenate([residuals(a), residuals(b)]), n, n, fpr, n_resamples=1000)
        exceed += abs(relative_median_delta(a, b)) > threshold
    assert 0.05 < exceed / trials < 0.15  # ~fpr (the smoothed bootstrap from 20 runs is close, a little optimistic)


def test_noise_threshold_grows_with_noise_and_shrinks_with_runs():
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 0.05, 40)
    assert noise_threshold(noise, 10, 10) < noise_threshold(2 * noise, 10, 10)
    assert noise_threshold(noise, 30, 30) < noise_threshold(noise, 5, 5)
    assert noise_threshold(noise, 10, 10, fpr=0.01) > noise_threshold(noise, 10, 10, fpr=0.1)
