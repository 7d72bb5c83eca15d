"""workbench.metrics and the grouped quality pass, cross-checked against sklearn and plain numpy on random data."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from workbench import metrics as M
from workbench.data.quality import finish, merge_partials, quality_partial


def _data(seed: int, n: int = 20_000, ties: bool = False, missing: float = 0.2):
    rng = np.random.default_rng(seed)
    p = rng.beta(1.2, 9.0, n)
    if ties:
        p = np.round(p, 2).clip(0.005, 0.995)
    y = (rng.random(n) < p * 1.1).astype(float)
    y[rng.random(n) < missing] = np.nan
    return p, y, rng.choice(["a", "b", "c"], n)


def _np_ne(p, y):
    """Independent NE: log loss over the entropy of the base rate, written out."""
    keep = ~np.isnan(y)
    p, y = p[keep], y[keep]
    ll = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    r = y.mean()
    return ll / -(r * np.log(r) + (1 - r) * np.log(1 - r))


def _np_ece(p, y, bins=10):
    keep = ~np.isnan(y)
    p, y = p[keep], y[keep]
    total = 0.0
    for k in range(bins):
        m = (p >= k / bins) & ((p < (k + 1) / bins) if k < bins - 1 else (p <= 1))
        if m.any():
            total += m.sum() / len(p) * abs(p[m].mean() - y[m].mean())
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numpy_helpers_match_sklearn_and_plain_numpy(seed):
    p, y, _ = _data(seed)
    keep = ~np.isnan(y)
    assert M.log_loss(p, y) == pytest.approx(sk_log_loss(y[keep], p[keep]), rel=1e-12)
    assert M.auc(p, y) == pytest.approx(roc_auc_score(y[keep], p[keep]), rel=1e-12)
    assert M.normalized_entropy(p, y) == pytest.approx(_np_ne(p, y), rel=1e-12)
    assert M.ece(p, y) == pytest.approx(_np_ece(p, y), abs=1e-12)
    assert M.calibration_ratio(p, y) == pytest.approx(p[keep].sum() / y[keep].sum())


def test_exact_auc_handles_ties_like_sklearn():
    p, y, _ = _data(3, ties=True)
    keep = ~np.isnan(y)
    assert M.auc(p, y) == pytest.approx(roc_auc_score(y[keep], p[keep]), rel=1e-12)


def test_base_rate_entropy_edges():
    assert np.isnan(M.base_rate_entropy(0.0)) and np.isnan(M.base_rate_entropy(1.0))
    assert M.base_rate_entropy(0.5) == pytest.approx(np.log(2))


@pytest.mark.parametrize(("seed", "ties"), [(0, False), (1, True)])
def test_grouped_pass_matches_sklearn_per_group(seed, ties):
    p, y, g = _data(seed, ties=ties)
    lf = pl.LazyFrame({"prediction": p, "label": y, "g": g}).with_columns(pl.col("label").fill_nan(None))
    table = finish(quality_partial(lf, ["g"]).collect(), ["g"])
    for row in table.iter_rows(named=True):
        m = g == row["g"]
        pk, yk = p[m], y[m]
        keep = ~np.isnan(yk)
        assert row["rows"] == m.sum() and row["labeled"] == keep.sum()
        assert row["log_loss"] == pytest.approx(sk_log_loss(yk[keep], pk[keep]), rel=1e-9)
        assert row["normalized_entropy"] == pytest.approx(_np_ne(pk, yk), rel=1e-9)
        assert row["ece"] == pytest.approx(_np_ece(pk, yk), abs=1e-9)
        assert row["prediction_mean"] == pytest.approx(pk.mean())
        assert row["label_rate"] == pytest.approx(yk[keep].mean())
        assert row["calibration_ratio"] == pytest.approx(pk[keep].sum() / yk[keep].sum())
        # the binned AUC is within its stated bound of the exact one
        exact = roc_auc_score(yk[keep], pk[keep])
        assert abs(row["auc"] - exact) <= row["auc_bound"] + 1e-12
        assert ties or row["auc_bound"] < 0.01  # rounded scores tie for real; the bound says so


def test_partials_merge_to_the_one_pass_answer():
    p, y, g = _data(4)
    frame = pl.DataFrame({"prediction": p, "label": y, "g": g}).with_columns(pl.col("label").fill_nan(None))
    whole = finish(quality_partial(frame.lazy(), ["g"]).collect(), ["g"])
    parts = [quality_partial(frame.slice(a, b).lazy(), ["g"]).collect() for a, b in ((0, 7_000), (7_000, 13_000))]
    merged = finish(merge_partials(parts, ["g"]), ["g"])
    for col in ("rows", "labeled", "normalized_entropy", "auc", "ece", "calibration_ratio"):
        assert merged[col].to_list() == pytest.approx(whole[col].to_list(), rel=1e-9)


def test_auc_from_bins_and_its_bound():
    p, y, _ = _data(5, missing=0.0)
    b = np.floor(p * 50).astype(int)
    pos = np.bincount(b, weights=y, minlength=51)
    neg = np.bincount(b, weights=1 - y, minlength=51)
    value, bound = M.auc_from_bins(pos, neg)
    assert abs(value - roc_auc_score(y, p)) <= bound


def test_ne_standard_error_matches_the_spread_over_resamples():
    rng = np.random.default_rng(6)
    ne = []
    for _ in range(400):
        p = rng.beta(1.2, 9.0, 2_000)
        y = (rng.random(2_000) < p).astype(float)
        ne.append(_np_ne(p, y))
    p = rng.beta(1.2, 9.0, 2_000)
    y = (rng.random(2_000) < p).astype(float)
    ll = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    se = M.ne_se(np.array([2_000.0]), np.array([y.sum()]), np.array([ll.sum()]), np.array([(ll * ll).sum()]),
                 np.array([(ll * y).sum()]))[0]
    assert se == pytest.approx(np.std(ne), rel=0.25)


def test_auc_standard_error_matches_the_spread_over_resamples():
    rng = np.random.default_rng(7)
    aucs = []
    for _ in range(300):
        p = rng.beta(1.2, 9.0, 3_000)
        y = (rng.random(3_000) < p).astype(float)
        aucs.append(M.auc(p, y))  # exact, cross-checked against sklearn above
    a = float(np.mean(aucs))
    se = M.auc_se(a, 3_000 * 0.118, 3_000 * 0.882)
    assert se == pytest.approx(np.std(aucs), rel=0.3)


@pytest.mark.parametrize(("centre", "rate"), [(0.0, 0.3), (-3.0, 0.01), (12.0, 0.02), (-14.0, 0.6)])
def test_fit_offset_is_the_likelihoods_maximum_even_far_from_the_labels(centre, rate):
    """Logits near 12 on rows that click 2 % of the time (a snapshot trained on sub-sampled negatives): a full
    Newton step from 0 overshoots to -1e15 and the solve returned NaN; the held steps reach scipy's optimum."""
    from scipy.optimize import minimize_scalar

    rng = np.random.default_rng(7)
    z = centre + rng.normal(0.0, 1.0, 20_000)
    y = (rng.random(20_000) < rate).astype(float)
    with np.errstate(all="raise"):
        b = M.fit_offset(z, y)
    best = minimize_scalar(lambda c: M.row_log_loss_logit(z + c, y).sum(), bounds=(-40, 40), method="bounded",
                           options={"xatol": 1e-9})
    assert b == pytest.approx(best.x, abs=1e-4)
    assert M.sigmoid(z + b).mean() == pytest.approx(y.mean(), rel=1e-6)  # calibrated in the large


def test_fit_offset_without_positives_is_a_large_finite_shift():
    z = np.random.default_rng(3).normal(2.0, 1.0, 1_000)
    with np.errstate(all="raise"):
        b = M.fit_offset(z, np.zeros_like(z))
    assert np.isfinite(b) and M.sigmoid(z + b).mean() < 1e-9  # the maximum is at -inf: a shift that predicts ~0
