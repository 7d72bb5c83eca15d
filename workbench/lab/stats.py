"""The statistics of the lab: two tests, an effect size, and a noise threshold.

A change in time-to-first-batch (or in one phase) is declared only when

1. it is *significant*: both two-sided tests reject at level ``alpha``:
   Welch's t-test on means (:func:`welch_t_test`) and the Mann-Whitney U rank
   test (:func:`mann_whitney_u`), which is robust to the long right tail of
   process timings;
2. its *size* ``median(B) / median(A) - 1`` exceeds a threshold derived from
   the run-to-run noise of A/A runs and tuned to a target false-positive rate
   (:func:`noise_threshold`);
3. it *reproduces* in fresh confirmation runs (decided in
   :mod:`workbench.lab.comparison`).

Both tests return the same statistic and p-value as ``scipy.stats.ttest_ind
(equal_var=False)`` and ``scipy.stats.mannwhitneyu``; the test suite checks it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal

import numpy as np

__all__ = [
    "HypothesisTest",
    "bootstrap_ci",
    "mann_whitney_u",
    "noise_threshold",
    "relative_median_delta",
    "residuals",
    "welch_t_test",
]

Alternative = Literal["two-sided", "greater", "less"]
_ALTERNATIVES = ("two-sided", "greater", "less")


@dataclass(frozen=True, slots=True)
class HypothesisTest:
    """The outcome of one two-sample test (``x`` against ``y``)."""

    test: str
    statistic: float
    pvalue: float
    alternative: str
    method: str
    df: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.test} p={self.pvalue:.2g}"


def _samples(x: Any, y: Any, alternative: str) -> tuple[np.ndarray, np.ndarray]:
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative={alternative!r}: expected one of {list(_ALTERNATIVES)}")
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"each sample needs at least 2 values, got {len(x)} and {len(y)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("samples must be finite")
    return x, y


def welch_t_test(x: Any, y: Any, alternative: Alternative = "two-sided") -> HypothesisTest:
    """Welch's unequal-variances t-test of ``mean(x) - mean(y)``.

    ``t = (mean(x) - mean(y)) / sqrt(s_x^2 / n_x + s_y^2 / n_y)`` with sample
    variances (ddof=1), and Welch-Satterthwaite degrees of freedom
    ``df = (v_x + v_y)^2 / (v_x^2 / (n_x - 1) + v_y^2 / (n_y - 1))`` where
    ``v = s^2 / n`` (Welch, B. L. 1947, Biometrika 34: 28-35). The p-value is
    from Student's t distribution with ``df`` degrees of freedom.

    Examples
    --------
    >>> round(welch_t_test([1.0, 1.1, 0.9, 1.0], [1.3, 1.4, 1.2, 1.3]).pvalue, 4)
    0.002
    """
    from scipy.special import stdtr

    x, y = _samples(x, y, alternative)
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    diff = x.mean() - y.mean()
    if vx + vy == 0:
        # Two constant samples: equal means are no evidence, different means are certain.
        t, df = (0.0, float("nan")) if diff == 0 else (float(np.copysign(np.inf, diff)), float("nan"))
        p = {"greater": float(t > 0), "less": float(t < 0)}.get(alternative, float(t != 0))
        return HypothesisTest("welch", t, 1.0 - p, alternative, "welch", df)
    t = diff / np.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    if alternative == "greater":
        p = stdtr(df, -t)
    elif alternative == "less":
        p = stdtr(df, t)
    else:
        p = 2 * stdtr(df, -abs(t))
    return HypothesisTest("welch", float(t), float(min(p, 1.0)), alternative, "welch", float(df))


def _rank_with_ties(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mid-ranks (1-based) and the sizes of the tie groups."""
    order = np.argsort(values, kind="mergesort")
    sorted_ = values[order]
    starts = np.flatnonzero(np.r_[True, sorted_[1:] != sorted_[:-1]])
    sizes = np.diff(np.r_[starts, len(values)])
    mid = starts + (sizes + 1) / 2.0  # average of 1-based ranks start+1 .. start+size
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mid, sizes)
    return ranks, sizes


@lru_cache(maxsize=64)
def _u_counts(m: int, n: int) -> tuple[int, ...]:
    """Number of arrangements giving each U = 0 .. m*n, for samples of sizes m and n.

    They are the coefficients of the Gaussian binomial coefficient
    ``[m + n choose m]_q = prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i)``
    (Mann & Whitney 1947), computed with exact integers.
    """
    m, n = min(m, n), max(m, n)  # the distribution is symmetric in the sizes
    size = m * n + 1
    c = np.zeros(size, dtype=object)
    c[0] = 1
    for i in range(1, m + 1):
        k = n + i
        if k < size:
            c[k:] = c[k:] - c[: size - k]
        # dividing by (1 - q^i) is a cumulative sum with stride i
        pad = (-size) % i
        padded = np.concatenate([c, np.zeros(pad, dtype=object)]).reshape(-1, i)
        c = np.cumsum(padded, axis=0).ravel()[:size]
    return tuple(int(v) for v in c)


def _u_sf(u: float, m: int, n: int) -> float:
    """``P(U >= u)`` under the null, exactly."""
    counts = _u_counts(m, n)
    k = max(int(u), 0)  # scipy truncates U to an integer here too (exact ignores ties)
    return float(Fraction(sum(counts[k:]), sum(counts))) if k < len(counts) else 0.0


def mann_whitney_u(x: Any, y: Any, alternative: Alternative = "two-sided",
                   method: Literal["auto", "exact", "asymptotic"] = "auto",
                   use_continuity: bool = True) -> HypothesisTest:
    """Mann-Whitney U rank test that ``x`` and ``y`` come from one distribution.

    ``U1 = R1 - n_x (n_x + 1) / 2`` where ``R1`` is the sum of the mid-ranks of
    ``x`` in the pooled sample (Mann & Whitney 1947). ``greater`` uses ``U1``,
    ``less`` uses ``U2 = n_x n_y - U1``, two-sided doubles the tail of
    ``max(U1, U2)``. ``exact`` takes the tail from the exact null distribution
    (ties ignored); ``asymptotic`` from the normal approximation with mean
    ``n_x n_y / 2``, the tie-corrected variance
    ``n_x n_y / 12 * (N + 1 - sum(t^3 - t) / (N (N - 1)))`` and a continuity
    correction of 1/2. ``auto`` picks ``exact`` when a sample has at most 8
    values and there are no ties, as ``scipy.stats.mannwhitneyu`` does.

    Examples
    --------
    >>> mann_whitney_u([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], alternative="less").pvalue
    0.05
    """
    from scipy.special import ndtr

    x, y = _samples(x, y, alternative)
    nx, ny = len(x), len(y)
    ranks, ties = _rank_with_ties(np.concatenate([x, y]))
    u1 = float(ranks[:nx].sum() - nx * (nx + 1) / 2)
    u2 = nx * ny - u1
    u, factor = {"greater": (u1, 1), "less": (u2, 1)}.get(alternative, (max(u1, u2), 2))
    if method == "auto":
        method = "exact" if min(nx, ny) <= 8 and not (ties > 1).any() else "asymptotic"
    if method == "exact":
        p = _u_sf(u, nx, ny)
    elif method == "asymptotic":
        n = nx + ny
        sigma = np.sqrt(nx * ny / 12 * ((n + 1) - float((ties**3 - ties).sum()) / (n * (n - 1))))
        numerator = u - nx * ny / 2 - (0.5 if use_continuity else 0.0)
        p = float(ndtr(-numerator / sigma)) if sigma > 0 else 1.0
    else:
        raise ValueError(f"method={method!r}: expected 'auto', 'exact' or 'asymptotic'")
    return HypothesisTest("mann-whitney", u1, float(min(max(p * factor, 0.0), 1.0)), alternative, method)


def relative_median_delta(a: Any, b: Any) -> float:
    """The effect size of the lab: ``median(b) / median(a) - 1`` (0.2 means B is 20% slower)."""
    return float(np.median(b) / np.median(a) - 1.0)


def residuals(samples: Any) -> np.ndarray:
    """Run-to-run noise of repeated runs of one variant, relative to their median.

    ``r_i = (x_i / median(x) - 1) * sqrt(n / (n - 1))``: the factor undoes the
    shrinkage of deviations from a center estimated on the same runs.
    """
    x = np.asarray(samples, dtype=float).ravel()
    return (x / np.median(x) - 1.0) * np.sqrt(len(x) / (len(x) - 1))


def noise_threshold(noise: Any, n_a: int, n_b: int, fpr: float = 0.05,
                    n_resamples: int = 4000, seed: int = 0) -> float:
    """The smallest relative change that A/A noise alone exceeds with probability ``fpr``.

    ``noise`` are relative A/A residuals (:func:`residuals` of each arm, pooled:
    every arm's runs are repeats of one revision, so their spread is run-to-run
    noise). Under "no change" both arms are draws from ``1 + noise``. The
    threshold is the ``1 - fpr`` quantile of ``|median(B*) / median(A*) - 1|``
    over ``n_resamples`` bootstrap pairs ``A*``, ``B*`` of sizes ``n_a``, ``n_b``
    drawn with replacement from ``1 + noise`` and smoothed with a Gaussian
    kernel of Silverman's bandwidth ``0.9 min(sd, IQR / 1.349) m^(-1/5)`` (the
    plain bootstrap of a median is discrete and too narrow in small samples;
    Hall, DiCiccio & Romano 1989, Ann. Statist. 17: 692-704). The size
    criterion alone then has a two-sided false-positive rate close to ``fpr``
    at these sample sizes (about 0.065 for ``fpr=0.05`` and 10 runs per arm in
    simulations); with the two tests and the confirmation stage on top, the
    lab's false alarm rate is far below ``fpr``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> 0.03 < noise_threshold(rng.normal(0, 0.05, 40), 10, 10) < 0.08
    True
    """
    values = np.asarray(noise, dtype=float).ravel()
    if len(values) < 2:
        raise ValueError("noise needs at least 2 residuals")
    rng = np.random.default_rng(seed)
    iqr_scale = (np.quantile(values, 0.75) - np.quantile(values, 0.25)) / 1.349
    scale = min(values.std(ddof=1), iqr_scale) or values.std(ddof=1)
    bandwidth = 0.9 * scale * len(values) ** -0.2
    arms = []
    for n in (n_a, n_b):
        draws = rng.choice(values, size=(n_resamples, n)) + bandwidth * rng.standard_normal((n_resamples, n))
        arms.append(np.median(1.0 + draws, axis=1))
    return float(np.quantile(np.abs(arms[1] / arms[0] - 1.0), 1.0 - fpr))


def bootstrap_ci(a: Any, b: Any, level: float = 0.95, n_resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`relative_median_delta` (arms resampled independently)."""
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    rng = np.random.default_rng(seed)
    med_a = np.median(rng.choice(a, size=(n_resamples, len(a))), axis=1)
    med_b = np.median(rng.choice(b, size=(n_resamples, len(b))), axis=1)
    lo, hi = np.quantile(med_b / med_a - 1.0, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
