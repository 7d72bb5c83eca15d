"""The tree-by-tree swap agrees with sklearn's own prediction on the swapped matrix."""

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from workbench.model._trees import ensemble_of


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3_000, 40))
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values take each split's learned side
    y = np.nan_to_num(x[:, 0]) * 2 - np.nan_to_num(x[:, 5]) + np.isnan(x[:, 7]) + rng.normal(0, 0.1, len(x))
    model = HistGradientBoostingRegressor(max_iter=60, max_depth=4, random_state=0).fit(x, y)
    return model, x, rng


def test_every_swap_equals_predict_on_the_swapped_matrix(fitted):
    model, x, rng = fitted
    trees = ensemble_of(model)
    assert trees is not None and len(trees.trees) == 60
    z, before = model.predict(x), x.copy()
    swap = trees.swapper(x, z)
    for j in range(x.shape[1]):
        values = rng.permutation(x[:, j])
        swapped = x.copy()
        swapped[:, j] = values
        np.testing.assert_allclose(swap(j, values), model.predict(swapped), rtol=0, atol=1e-9)
    assert np.array_equal(x, before, equal_nan=True)  # the rows were not modified


def test_reads_names_exactly_the_features_whose_swap_can_move_a_prediction(fitted):
    model, x, rng = fitted
    trees = ensemble_of(model)
    reads = trees.reads(x.shape[1])
    assert reads[[0, 5, 7]].all() and not reads.all()
    z = model.predict(x)
    for j in np.flatnonzero(~reads):
        swapped = x.copy()
        swapped[:, j] = rng.normal(size=len(x)) * 100
        assert np.array_equal(model.predict(swapped), z)


def test_an_unreadable_model_gives_none():
    assert ensemble_of(object()) is None


def test_a_wide_surrogate_fitted_on_every_core_equals_the_single_thread_fit():
    import polars as pl
    from threadpoolctl import threadpool_limits

    from workbench.model.isolation import SPLIT_FEATURES, _fit_surrogate

    rng = np.random.default_rng(2)
    d = SPLIT_FEATURES + 100  # wide: fitted with the default OpenMP threads
    xb, xi = rng.normal(size=(1500, d)), rng.normal(size=(1500, d))
    pb, pi = (pl.DataFrame({"prediction": 1 / (1 + np.exp(-(x[:, :5].sum(1) + 0.3 * rng.normal(size=len(x)))))})
              for x in (xb, xi))
    threaded, r2 = _fit_surrogate(pb, pi, xb, xi, seed=0)
    with threadpool_limits(limits=1, user_api="openmp"):  # an outer limit holds inside: a single-thread fit
        single, r2_single = _fit_surrogate(pb, pi, xb, xi, seed=0)
    assert r2 > 0.5 and r2 == r2_single
    np.testing.assert_array_equal(threaded.predict(xi), single.predict(xi))
