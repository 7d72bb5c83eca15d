"""workbench.data.drift: the distances against scipy and plain numpy; the broken feature ranks first, organic drift does not."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from tests.conftest import sample_case, sample_cases
from tests.data.analysis_data import write_case
from workbench.case.loader import open_case
from workbench.data._distances import js_distance, ks_from_cdf, ks_sorted, psi, wasserstein_from_cdf
from workbench.data.drift import (
    FLOOR,
    _changed_p,
    _multiplied,
    _profile_exprs,
    _ranks,
    _reference,
    _stats,
    _unit_change,
    arrival_hours,
    feature_by_slice,
    feature_drift,
    feature_timeline,
    kind_of_samples,
    merge_profiles,
    training_skew,
)
from workbench.data.onset import detect_onset
from workbench.errors import WorkbenchError


def _np_psi(a, b, floor=1e-4):
    p, q = a / a.sum(), b / b.sum()
    p, q = np.maximum(p, floor), np.maximum(q, floor)
    return float(np.sum((q - p) * np.log(q / p)))


def _profiles(xa, xb, bins):
    frame_a, frame_b = pl.DataFrame({"x": xa}), pl.DataFrame({"x": xb})
    ref = _reference(frame_a, ("x",), bins)
    exprs = _profile_exprs(ref)
    return ref, _stats(frame_a.select(exprs).row(0, named=True), 0, ref.edges["x"]), \
        _stats(frame_b.select(exprs).row(0, named=True), 0, ref.edges["x"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binned_ks_and_wasserstein_against_scipy(seed):
    rng = np.random.default_rng(seed)
    xa = rng.lognormal(0, 1, 40_000)
    xb = rng.lognormal(0.15 * seed, 1 + 0.1 * seed, 30_000)
    ref, a, b = _profiles(xa, xb, bins=200)
    ks = ks_from_cdf(a.cdf, b.cdf)
    exact = stats.ks_2samp(xa, xb).statistic
    largest_bin = max((a.hist / a.hist.sum()).max(), (b.hist / b.hist.sum()).max())
    assert exact - largest_bin - 1e-12 <= ks <= exact + 1e-12
    w1 = wasserstein_from_cdf(ref.edges["x"], a.cdf, b.cdf, a.tails, b.tails)
    assert w1 == pytest.approx(stats.wasserstein_distance(xa, xb), rel=0.03, abs=2e-3)


def test_psi_and_js_against_plain_numpy_and_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 500, 21).astype(float), rng.integers(0, 500, 21).astype(float)
    a[3] = 0  # an empty bin: PSI stays finite through the floor
    assert float(psi(a, b)) == pytest.approx(_np_psi(a, b), rel=1e-12)
    assert float(js_distance(a, b)) == pytest.approx(jensenshannon(a, b, base=2), rel=1e-9)
    assert float(js_distance(a, a)) == pytest.approx(0.0, abs=1e-7)


def test_column_ranks_match_scipy_with_ties_and_missing_values():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 6))
    x[rng.random(x.shape) < 0.1] = np.nan
    x[:, 1] = np.round(x[:, 1])  # ties get their average rank
    x[:, 2] = rng.integers(0, 2, 400)  # a boolean: two tied groups
    x[:, 3] = np.nan  # nothing to rank
    x[1:, 4] = np.nan  # one value: no rank either
    x[5, 5] = np.inf  # not finite: missing, as NaN is
    got = _ranks(x)
    present = np.isfinite(x).sum(0)
    want = stats.rankdata(np.where(np.isfinite(x), x, np.nan), axis=0, nan_policy="omit") / present
    want[:, present < 2] = np.nan
    assert np.isnan(got[:, 3]).all() and np.isnan(got[:, 4]).all()
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


def test_profiles_of_parts_merge_to_the_whole():
    rng = np.random.default_rng(4)
    x = rng.normal(size=10_000)
    x[rng.random(10_000) < 0.1] = np.nan
    frame = pl.DataFrame({"x": x}).with_columns(pl.col("x").fill_nan(None))
    ref = _reference(frame, ("x",), 20)
    exprs = _profile_exprs(ref)
    whole = frame.select(exprs)
    merged = merge_profiles([frame.slice(0, 3_000).select(exprs), frame.slice(3_000).select(exprs)])
    assert merged.row(0) == pytest.approx(whole.row(0), rel=1e-12)


@pytest.mark.parametrize("path", [p for p in sample_cases() if json.loads((p / "truth.json").read_text())["kind"]
                                  in ("feature", "upstream")], ids=lambda p: p.name)
def test_injected_features_rank_in_the_top_three_with_their_kind(path):
    truth = json.loads((path / "truth.json").read_text())
    case = open_case(path)
    onset = detect_onset(case)
    drift = feature_drift(case, onset.baseline, onset.incident)
    top = drift.table["feature"].to_list()[: max(3, len(truth["details"]["features"]))]
    targets = truth["details"]["features"]
    assert set(targets) <= set(top), str(drift)
    mode = {"null": "coverage", "scale": "scale", "stale": "stale"}.get(truth["details"]["mode"])
    if mode:
        kinds = drift.table.filter(pl.col("feature").is_in(targets))["kind"].to_list()
        assert set(kinds) == {mode}, str(drift)


def test_control_has_no_broken_feature_and_organic_drift_stays_below_the_floor():
    path = sample_case("control")
    truth = json.loads((path / "truth.json").read_text())
    case = open_case(path)
    onset = detect_onset(case)
    drift = feature_drift(case, onset.baseline, onset.incident)
    assert drift.broken.is_empty(), str(drift)
    organic = drift.table.filter(pl.col("feature").is_in(truth["details"]["organic_drift"]))
    assert organic["severity"].max() < FLOOR / 2
    # raw drift is there (the peers flag it); the usual drift over the same lag absorbs it
    assert (organic["js"] > organic["severity"]).all() and drift.placebo is not None


@pytest.mark.parametrize(("break_", "kind"), [("coverage", "coverage"), ("coverage_all", "coverage"), ("scale", "scale"),
                                             ("stale", "stale")])
def test_synthetic_breaks_are_named(tmp_path, break_, kind):
    case = open_case(write_case(tmp_path / "c", seed=21, onset=50, break_=break_))
    onset = detect_onset(case)
    drift = feature_drift(case, onset.baseline, onset.incident)
    top = drift.table.row(0, named=True)
    # coverage_all: a feature left with no value at all has no value distribution to compare, its move is coverage
    assert top["feature"] == ("f_b" if break_ == "scale" else "f_a") and top["kind"] == kind, str(drift)
    assert drift.table.row(1, named=True)["kind"] == "none"
    if kind == "coverage":
        assert top["coverage_incident"] < 0.2 < 0.9 < top["coverage_baseline"]
    if kind == "scale":
        assert top["scale_ratio"] > 50
    if kind == "stale":
        assert top["top_share_incident"] > 0.9 and top["distinct_incident"] == 1


@pytest.mark.parametrize("written", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
def test_a_feature_written_as_nan_is_a_coverage_loss(tmp_path, written):
    # writers differ: pandas stores a missing float as null, Spark and numpy as NaN. Read as a value, NaN made the
    # coverage break a "scale" change at full coverage; it is a missing value like a null. So is infinity (an overflow
    # upstream): read as a value it made every moment of the drift statistics NaN
    root = write_case(tmp_path / "c", seed=21, onset=50, break_="coverage")
    path = root / "predictions.parquet"
    frame = pl.read_parquet(path).with_columns(pl.col("f_a").fill_null(written))
    assert frame["f_a"].null_count() == 0 and (~frame["f_a"].is_finite()).sum() > 10_000
    frame.write_parquet(path)
    case = open_case(root)
    onset = detect_onset(case)
    top = feature_drift(case, onset.baseline, onset.incident).table.row(0, named=True)
    assert top["feature"] == "f_a" and top["kind"] == "coverage"
    assert top["coverage_incident"] < 0.2 < 0.9 < top["coverage_baseline"]


def test_sorted_ks_is_scipys():
    rng = np.random.default_rng(3)
    xa, xb = np.sort(rng.lognormal(0, 1, 5_000)), np.sort(np.round(rng.lognormal(0.1, 1.2, 3_000), 1))
    assert ks_sorted(xa, xb) == pytest.approx(stats.ks_2samp(xa, xb).statistic, abs=1e-12)


def test_a_unit_change_is_named_even_when_a_heavy_tail_did_not_follow():
    """Spend in dollars turned into tenths of a cent (x1000) with the top values capped by a downstream clip: the median
    and the bulk moved by one factor, the mean and the 99th percentile did not (a moment-based rule said
    "distribution"). A change of shape with a similar median move, or a small factor, is not a unit change."""
    rng = np.random.default_rng(5)
    base = np.sort(rng.lognormal(2.7, 2.2, 20_000))
    unit = np.sort(np.minimum(rng.lognormal(2.7, 2.2, 20_000) * 1000, 1e5))

    capped = _unit_change(base, unit)
    assert capped["_unit_factor"] == pytest.approx(1000, rel=0.1) and _multiplied(capped)
    assert np.mean(unit) / np.mean(base) < 300  # the old moment rule's mean ratio disagreed with the median's
    reshaped = np.sort(rng.lognormal(2.7 + np.log(3), 0.6, 20_000))  # median x3 but another shape
    assert not _multiplied(_unit_change(base, reshaped))
    assert not _multiplied(_unit_change(base, np.sort(rng.lognormal(2.7, 2.2, 20_000) * 1.2)))  # below x1.5
    with_zeros = np.sort(np.where(rng.random(20_000) < 0.4, 0.0, rng.lognormal(0, 1, 20_000)))
    assert _multiplied(_unit_change(with_zeros, np.sort(with_zeros * 0.01)))  # zeros stay zeros, the rest /100


def test_feature_by_slice_finds_the_slice_of_a_confined_break():
    path = sample_case("feature_slice_break")
    truth = json.loads((path / "truth.json").read_text())
    case = open_case(path)
    onset = detect_onset(case)
    where = feature_by_slice(case, truth["target"], onset.baseline, onset.incident)
    assert where.concentrated and where.top["slice"] == truth["slice"], str(where)
    assert json.loads(json.dumps(where.to_dict()))["top"]["slice"] == truth["slice"]


def test_training_skew_timeline_and_errors(small_case_template, tmp_path):
    case = open_case(small_case_template)
    onset = detect_onset(case)
    skew = training_skew(case, onset.incident)
    assert skew.reference == "training" and set(skew.table["feature"]) == {"f_a", "f_b", "f_c"}
    assert json.loads(json.dumps(skew.to_dict()))["baseline"] is None and "training.parquet" in str(skew)
    timeline = feature_timeline(case, ["f_a", "f_b"])
    assert timeline.height == 2 * 48 and timeline["coverage"].min() == 1.0
    bare = open_case(write_case(tmp_path / "bare", seed=1))
    with pytest.raises(WorkbenchError, match=r"add training\.parquet"):
        training_skew(bare, onset.incident)
    with pytest.raises(WorkbenchError, match="did you mean 'f_a'"):
        feature_drift(case, onset.baseline, onset.incident, features=["f_aa"])


def test_a_log_out_of_time_order_gives_the_same_answer(tmp_path):
    # windows are read as row ranges when the log is in time order; shuffled rows must fall back, not mislead
    root = write_case(tmp_path / "sorted", seed=22, onset=50, break_="coverage")
    frame = pl.read_parquet(root / "predictions.parquet")
    (tmp_path / "shuffled").mkdir()
    frame.sample(fraction=1.0, shuffle=True, seed=1).write_parquet(tmp_path / "shuffled" / "predictions.parquet")
    a, b = open_case(root), open_case(tmp_path / "shuffled")
    onset = detect_onset(a)
    da = feature_drift(a, onset.baseline, onset.incident).table
    db = feature_drift(b, onset.baseline, onset.incident).table
    for col in ("feature", "kind", "coverage_incident", "psi", "ks"):
        assert da[col].to_list() == pytest.approx(db[col].to_list()) if da[col].dtype.is_float() else da[col].to_list() == db[col].to_list()
    # and a sorted log with unsorted parts in the middle: same again
    (tmp_path / "parts").mkdir()
    half = frame.height // 2
    pl.concat([frame.slice(half), frame.slice(0, half)]).write_parquet(tmp_path / "parts" / "predictions.parquet")
    dc = feature_drift(open_case(tmp_path / "parts"), onset.baseline, onset.incident).table
    assert dc["coverage_incident"].to_list() == pytest.approx(da["coverage_incident"].to_list())
    # even if the loader had not warned, the row-count check catches the disorder
    from dataclasses import replace

    silent = replace(b, warnings=())
    dd = feature_drift(silent, onset.baseline, onset.incident).table
    assert dd["coverage_incident"].to_list() == pytest.approx(da["coverage_incident"].to_list())
    from workbench.data.slices import find_slices

    assert find_slices(silent, onset.baseline, onset.incident).total_delta == pytest.approx(
        find_slices(a, onset.baseline, onset.incident).total_delta)


def test_a_boolean_whose_share_moved_is_not_stale_but_a_frozen_feature_is():
    """Staleness is values that stopped changing: the top value took the moved mass and half as many values are in
    effective use. A boolean whose share of ones went from 57% to 75% still uses both values (a mix that moved, the
    issue's "went stale" misreading); the same boolean frozen at 1 does not."""
    from workbench.data.drift import _fewer_values, _kind, _sample_stats

    rng = np.random.default_rng(8)
    before = np.sort((rng.random(20_000) < 0.57).astype(float))

    def kind_of(after: np.ndarray) -> str:
        ss = _sample_stats(before, np.sort(after), np.random.default_rng(0))
        top = ss["top_share_incident"] - ss["top_share_baseline"]
        moved = abs(after.mean() - before.mean())
        return _kind(0.2, 0.0, 0.2, moved, 0.0, top, _fewer_values(ss))

    assert kind_of((rng.random(20_000) < 0.75).astype(float)) == "distribution"
    assert kind_of(np.ones(20_000)) == "stale"


def test_kind_of_samples_names_each_break_as_the_profiles_do():
    # a break found inside one slice is classified from the windows' sampled rows there, by the profiles' rules
    rng = np.random.default_rng(7)
    before = np.round(rng.lognormal(1.0, 0.6, 4_000), 2)
    after = np.round(rng.lognormal(1.0, 0.6, 4_000), 2)
    nulls = after.copy()
    nulls[rng.random(len(after)) < 0.6] = np.nan
    frozen = np.where(rng.random(len(after)) < 0.6, 2.71, after)
    assert kind_of_samples(before, after) == "none"
    assert kind_of_samples(before, after * 10) == "scale"  # x10 stays inside the scale band: the unit-change rule
    assert kind_of_samples(before, after / 1000) == "scale"
    assert kind_of_samples(before, nulls) == "coverage"
    assert kind_of_samples(before, frozen) == "stale"
    mixed = np.where(rng.random(len(after)) < 0.5, np.round(rng.uniform(0, 12, len(after)), 2), after)
    assert kind_of_samples(before, mixed) == "distribution"  # a new mix of values, neither multiplied nor frozen
    # a feed replaying its last 34 values (dev feature/stale_block/30): no value dominates, the top one holds 3 % of
    # the rows, but nearly every row's value is now a repeat
    fine = np.round(rng.lognormal(1.0, 0.6, 4_000), 4)
    replayed = fine[-34:][rng.integers(0, 34, len(fine))]
    assert kind_of_samples(fine, replayed) == "stale"
    # values that repeat because they were rounded are a change of precision, not a feed stuck on its past (a review)
    assert kind_of_samples(fine, np.round(fine)) != "stale"
    assert kind_of_samples(fine, np.round(fine * 2) / 2) != "stale"
    # nor is a few hundred rows of integers that narrowed (repeat share depends on the sample's size), nor 20,000:
    # a range that narrowed keeps the values the baseline had there (a review)
    ints = rng.integers(0, 1000, 300).astype(float)
    assert kind_of_samples(ints, rng.integers(300, 400, 300).astype(float)) != "stale"
    many = rng.integers(0, 1000, 20_000).astype(float)
    assert kind_of_samples(many, rng.integers(300, 400, 20_000).astype(float)) != "stale"
    assert kind_of_samples(many, rng.integers(0, 80, 20_000).astype(float)) != "stale"
    # a mix of a few values that moved is no freeze, though fewer are in effective use (7 -> 2.9; 2.6 -> 1.2)
    seven = rng.integers(0, 7, 20_000).astype(float)
    assert kind_of_samples(seven, np.where(rng.random(20_000) < 0.48, 3.0, rng.integers(0, 7, 20_000))) != "stale"
    three = rng.choice([0.0, 1.0, 2.0], 20_000, p=[0.5, 0.3, 0.2])
    assert kind_of_samples(three, rng.choice([0.0, 1.0, 2.0], 20_000, p=[0.9, 0.05, 0.05])) != "stale"
    # a feed frozen on one of the 51 values of its 0.1 grid for 93 % of its rows still shows all 51 in the other 7 %:
    # fewer values in effective use, not fewer distinct ones (dev feature/stale_constant/20 read "drifted")
    grid = np.round(rng.uniform(0, 5, 20_000), 1)
    assert kind_of_samples(grid, np.where(rng.random(20_000) < 0.93, 4.8, np.round(rng.uniform(0, 5, 20_000), 1))) == "stale"
    # a feed on a 0.001 grid repeats on most of 20,000 rows already; replaying 8 of its values it repeats on all of
    # them, a rise of half of what it could rise, not of half the rows (dev feature/stale_block/19 read "drifted")
    milli = np.round(rng.normal(0, 1, 20_000), 3)
    assert kind_of_samples(milli, milli[-8:][rng.integers(0, 8, 20_000)]) == "stale"
    assert kind_of_samples(milli, np.round(rng.normal(0.5, 1, 20_000), 3)) != "stale"  # the same grid, moved


def test_a_default_served_in_place_of_values_is_a_coverage_loss_not_a_frozen_feed():
    """Rows that took 0 or -1 in place of their values lost coverage to a default (held-back feature/coverage_default
    read "went stale" or "drifted"); a feed frozen on its last value, any value it had, is stale; so is one frozen
    on a value near the mean (dev upstream/stale/17), and a fill value the baseline already held often (zero clicks
    in a count) cannot be told from a freeze."""
    from workbench.data.drift import fill_value

    rng = np.random.default_rng(9)
    before = np.round(rng.lognormal(1.0, 0.6, 4_000), 2)
    after = np.round(rng.lognormal(1.0, 0.6, 4_000), 2)
    hit = rng.random(len(after)) < 0.6
    for fill in (0.0, -1.0):
        assert kind_of_samples(before, np.where(hit, fill, after)) == "default", fill
    assert kind_of_samples(before, np.where(hit, 2.71, after)) == "stale"  # a value of the feed's own
    # a count of a few dozen to a few hundred served as -1 on 85 % of its rows: -1 is outside its scale band, which
    # read as a unit change, and the backfill that divides by a scale ratio made every simulation worse (held-back
    # feature/coverage_default/1000122, draw S); a real unit change puts no mass on a sentinel
    counts = np.round(rng.lognormal(4.2, 0.8, 4_000))
    assert kind_of_samples(counts, np.where(rng.random(4_000) < 0.85, -1.0, counts)) == "default"
    assert kind_of_samples(counts, counts * 1000) == "scale"
    assert kind_of_samples(before, np.where(hit, round(float(before.mean()), 4), after)) == "stale"
    # a boolean whose rows took -1: three values where there were two, so not "fewer values", but a default
    flag_b, flag_i = (rng.random(4_000) < 0.2).astype(float), (rng.random(4_000) < 0.2).astype(float)
    assert kind_of_samples(flag_b, np.where(hit, -1.0, flag_i)) == "default"
    # a count whose zeros were already a quarter of the rows: 0 on 80 % of them is a freeze as much as a default
    counts_b, counts_i = rng.poisson(1.5, 4_000).astype(float), rng.poisson(1.5, 4_000).astype(float)
    assert kind_of_samples(counts_b, np.where(hit, 0.0, counts_i)) != "default"
    # the value and its share of the present values before and after
    value, share_b, share_i = fill_value(np.sort(before), np.sort(np.where(hit, -1.0, after)), 0.6)
    assert value == -1.0 and share_b == 0.0 and share_i == pytest.approx(hit.mean(), abs=1e-9)


def test_a_break_inside_a_slice_must_beat_its_sampling_error():
    """Two windows of 25 rows from one distribution over 11 cells often reach JS 0.1 (a slice of a few dozen rows,
    dev slice/collapse/22, showed 0.50); the G test behind ``concentrated`` is scipy's log-likelihood
    chi2_contingency and rarely calls it a change, while 2,000 rows that lost a third of their coverage it does."""
    rng = np.random.default_rng(4)
    p = np.r_[0.05, np.full(10, 0.095)]
    js, pvals = [], []
    for _ in range(300):
        a, b = rng.multinomial(25, p), rng.multinomial(25, p)
        js.append(float(js_distance(a, b)))
        pvals.append(_changed_p(a.astype(float), b.astype(float)))
        keep = (a + b) > 0
        expected = stats.chi2_contingency(np.vstack([a, b])[:, keep], correction=False, lambda_="log-likelihood").pvalue
        assert pvals[-1] == pytest.approx(expected, rel=1e-9)
    assert np.mean(np.array(js) >= FLOOR) > 0.9
    assert np.mean(np.array(pvals) <= 0.001) < 0.01
    lost = np.r_[0.35, np.full(10, 0.065)]
    assert _changed_p(rng.multinomial(2_000, p).astype(float), rng.multinomial(2_000, lost).astype(float)) < 1e-12


def test_a_change_is_timed_on_the_statistic_that_shows_it():
    """``arrival_hours`` reads the per-period statistic that moved most beyond its noise. A feed frozen on two recent
    values (dev feature/stale_block/16, daily grain) moved its daily mean by 3.5 of the mean's daily noise, which
    wanders, while its coverage stepped from 95% to 100% at once: a step of one day, not a four-day "population
    shift". A gradual move of the mean, with coverage steady, still takes its days."""
    from datetime import UTC, datetime, timedelta

    from workbench.windows import Window

    rng = np.random.default_rng(4)
    start, days = datetime(2026, 4, 1, tzinfo=UTC), 40
    onset = start + timedelta(days=20)
    windows = [start + timedelta(days=d) for d in range(days)]
    after = np.arange(days) >= 20
    step_coverage = np.where(after, 1.0, 0.95 + rng.normal(0, 0.002, days))
    wandering_mean = np.where(after, 3.49, 3.70) + rng.normal(0, 0.06, days)
    stale = pl.DataFrame({"window": windows, "rows": [7000] * days, "feature": ["f"] * days,
                          "coverage": step_coverage, "mean": wandering_mean})
    before = Window(start, onset)
    assert arrival_hours(stale, onset, before) <= 48
    ramp = np.clip((np.arange(days) - 20) / 8, 0, 1)  # eight days from the old level to the new one
    shift = stale.with_columns(pl.Series("coverage", np.full(days, 0.95)),
                               pl.Series("mean", 3.70 + 1.0 * ramp + rng.normal(0, 0.02, days)))
    assert 4 * 24 <= arrival_hours(shift, onset, before) <= 8 * 24
    assert arrival_hours(stale, onset, before, columns=("mean",)) >= 72  # the mean alone: its noise read as days
    # a feed that never had a null: its coverage's MAD is 0, and one null in ten thousand after the onset must not
    # outweigh a mean that ramped sixty times its noise (the coverage's binomial error floors its noise; a review)
    never_null = shift.with_columns(pl.Series("coverage", np.where(after, 0.9999, 1.0)),
                                    pl.Series("rows", np.full(days, 5000)))
    assert 4 * 24 <= arrival_hours(never_null, onset, before) <= 8 * 24


@pytest.mark.parametrize("step", [-1.0, 1.0])
def test_a_reference_of_one_value_reads_a_move_down_as_a_move_up(step):
    """A clock feature over a few hours holds one value (day_of_week = 3). Bins are closed on the right, so before
    the fix a value below the reference's only value shared its bin: a day earlier read as JS 0 and a day later as
    JS 1, and the guard's late-quarter check, whose usual drift (the day before) read 0, tripped on every run."""
    xa = np.full(5_000, 3.0)
    _, a, b = _profiles(xa, xa + step, bins=20)
    assert js_distance(a.full, b.full) == pytest.approx(1.0)
    _, a, same = _profiles(xa, xa, bins=20)
    assert js_distance(a.full, same.full) == pytest.approx(0.0)
    # a boolean: a default of -1 in place of its 0s is a move too, as a 2 in place of its 1s is
    rng = np.random.default_rng(0)
    flags = (rng.random(20_000) < 0.3).astype(float)
    _, a, b = _profiles(flags, np.where(flags == 0, -1.0, flags), bins=20)
    _, _, c = _profiles(flags, np.where(flags == 1, 2.0, flags), bins=20)
    assert js_distance(a.full, b.full) > 0.5 and js_distance(a.full, c.full) > 0.5
