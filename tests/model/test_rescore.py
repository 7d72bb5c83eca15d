"""Counterfactual re-scoring: the snapshot swap blames only a bad snapshot; serving consistency (with the model, and
model-free as the unexplained shift) sees a serving-side change."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import polars as pl
import pytest

from tests.conftest import sample_case, with_nan_snapshots
from workbench import open_case
from workbench.data.onset import detect_onset
from workbench.metrics import normalized_entropy, row_log_loss, sigmoid
from workbench.model.rescore import serving_consistency, snapshot_swap, unexplained_shift


def _windows(name: str):
    case = open_case(sample_case(name))
    onset = detect_onset(case)
    return case, onset.baseline, onset.incident


def test_swap_recovers_the_regression_of_a_corrupt_snapshot():
    case, baseline, incident = _windows("snapshot_corrupt")
    swap = snapshot_swap(case, baseline, incident)
    truth = json.loads((case.root / "truth.json").read_text())
    assert truth["target"] in swap.served
    assert swap.recovered > 0.5 and swap.z > 5
    assert swap.ne_swapped < swap.ne_rescored


@pytest.mark.parametrize("name", ["calibration_shift", "feature_coverage_drop"])
def test_swap_does_not_blame_a_benign_snapshot(name):
    case, baseline, incident = _windows(name)
    swap = snapshot_swap(case, baseline, incident)
    assert swap is not None and swap.recovered < 0.25


def test_serving_consistency_sees_a_calibration_change_only():
    case, baseline, incident = _windows("calibration_shift")
    moved = serving_consistency(case, baseline, incident)
    assert moved.gap_baseline < 1e-3 < 0.1 < moved.changed  # logged == model output before; not after
    case, baseline, incident = _windows("feature_coverage_drop")
    still = serving_consistency(case, baseline, incident)
    assert still.changed < 1e-3  # a broken feature changes logged and re-scored predictions alike


def test_serving_consistency_reads_a_rounded_log_no_finer_than_it_holds(tmp_path):
    """Serving is healthy (every logged prediction is the model's own score, rounded to three decimals), and a feature
    x5 pushes many predictions under 0.0005, logged as 0. Read at the float32 limit, those zeros sat 5-7 logits from
    the model's scores and a serving path that changed was named beside the break (a review). Read no further out
    than the log resolves, they agree; a serving path that logs 0 on the same rounded log is still 5 logits off."""
    import shutil
    from datetime import UTC, datetime

    from workbench.model.load import feature_matrix, load_model, score
    from workbench.windows import Window

    broken = pl.col("ts") >= datetime(2026, 11, 20, 6, tzinfo=UTC)
    baseline = Window(datetime(2026, 11, 19, 6, tzinfo=UTC), datetime(2026, 11, 19, 18, tzinfo=UTC))
    incident = Window(datetime(2026, 11, 20, 6, tzinfo=UTC), datetime(2026, 11, 20, 18, tzinfo=UTC))

    def rounded_log(name: str, factor: float, served_zero: bool):
        root = shutil.copytree(sample_case("control"), tmp_path / name)
        rows = pl.read_parquet(root / "predictions.parquet")
        rows = rows.with_columns(pl.when(broken).then(pl.col("f_position") * factor).otherwise(pl.col("f_position")))
        case = open_case(root)
        p = np.full(rows.height, np.nan)
        for sid in rows["snapshot_id"].unique().to_list():
            mask = (rows["snapshot_id"] == sid).to_numpy()
            p[mask] = score(load_model(case, sid), feature_matrix(rows.filter(pl.Series(mask)), case.features), "logit")
        rows = rows.with_columns(pl.Series("prediction", np.round(p, 3)).cast(pl.Float32))
        if served_zero:
            rows = rows.with_columns(pl.when(broken).then(0.0).otherwise(pl.col("prediction")).cast(pl.Float32).alias("prediction"))
        rows.write_parquet(root / "predictions.parquet")
        zeros = float((rows.filter(broken)["prediction"] == 0).mean())
        return serving_consistency(open_case(root), baseline, incident), zeros

    healthy, zeros = rounded_log("break", 5.0, served_zero=False)
    assert zeros > 0.1 and healthy is not None and healthy.changed < 0.02, (zeros, healthy)
    logs_zero, _ = rounded_log("zero", 1.0, served_zero=True)
    assert logs_zero is not None and logs_zero.changed > 4, logs_zero


def test_row_log_loss_matches_normalized_entropy():
    rng = np.random.default_rng(0)
    p, y = rng.uniform(0.01, 0.99, 1000), (rng.uniform(size=1000) < 0.3).astype(float)
    r = y.mean()
    assert row_log_loss(p, y).mean() / -(r * np.log(r) + (1 - r) * np.log(1 - r)) == pytest.approx(normalized_entropy(p, y))


def _frame(x: np.ndarray, z: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"prediction": sigmoid(z), "a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})


@pytest.mark.parametrize("offset", [0.0, 0.3, -0.5])
def test_unexplained_shift_separates_a_broken_input_from_a_serving_offset(offset):
    # the serving function: a fixed logit of three inputs. In the incident, input "a" lost 60% of its values to a
    # default the baseline also served 5% of the time (an input break that moves the predictions by itself), "b"
    # moved within its range, and every logit carries ``offset`` (a calibration layer): only the offset is unexplained
    rng = np.random.default_rng(7)
    n = 20_000

    def logit_of(x: np.ndarray) -> np.ndarray:
        return -3 + 0.8 * x[:, 0] - 0.5 * np.tanh(x[:, 1]) + 0.3 * x[:, 2] * (x[:, 0] > 0)

    xb = rng.normal(size=(n, 3))
    xb[rng.random(n) < 0.05, 0] = -2.0
    xi = rng.normal(size=(n, 3))
    xi[:, 1] = np.clip(xi[:, 1] + 0.7, -2.5, 2.5)
    xi[rng.random(n) < 0.6, 0] = -2.0
    u = unexplained_shift(_frame(xb, logit_of(xb)), _frame(xi, logit_of(xi) + offset), ("a", "b", "c"))
    assert u is not None and u.r2 > 0.95 and u.support > 0.95
    true_total = float((logit_of(xi) + offset).mean() - logit_of(xb).mean())
    assert u.total == pytest.approx(true_total, abs=1e-9)
    assert abs(u.unexplained - offset) < max(4 * u.se, 0.03)  # the surrogate's own error is a few hundredths
    assert abs(u.explained - (true_total - offset)) < max(4 * u.se, 0.03)
    if offset:
        assert u.share > 0.2 and u.z > 10
    else:
        assert u.share < 0.05


def test_unexplained_shift_leaves_out_rows_outside_the_baseline_support():
    # a unit change (x1000) puts every value of "a" outside what the baseline has seen: nothing left to measure
    rng = np.random.default_rng(3)
    xb, xi = rng.normal(size=(5_000, 3)), rng.normal(size=(5_000, 3))
    xi[:, 0] *= 1000
    xi[:100, 0] = 0.0  # a few rows whose value is still inside
    z = -2 + xb[:, 0]
    assert unexplained_shift(_frame(xb, z), _frame(xi, -2 + xi[:, 0]), ("a", "b", "c")) is None
    xi[:, 0] /= 1000  # back in range
    u = unexplained_shift(_frame(xb, z), _frame(xi, -2 + xi[:, 0]), ("a", "b", "c"))
    assert u is not None and u.support > 0.99 and u.rows > 4_900


@pytest.mark.parametrize("offset", [0.0, -0.6])
def test_a_serving_offset_beside_a_coverage_loss_is_measured_on_the_few_rows_left_in_support(offset):
    # input "a" lost 93% of its values to nulls the baseline never had: only 7% of the incident's rows lie inside what
    # the baseline held, but they are untouched by the break, so their residual is the offset (or nothing)
    rng = np.random.default_rng(11)
    n = 30_000
    xb, xi = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    xi[rng.random(n) < 0.93, 0] = np.nan

    def served(x: np.ndarray) -> np.ndarray:  # the model serves a missing "a" as 0
        return -2 + 0.9 * np.nan_to_num(x[:, 0]) - 0.4 * x[:, 1]

    u = unexplained_shift(_frame(xb, served(xb)), _frame(xi, served(xi) + offset), ("a", "b", "c"))
    assert u is not None and 0.05 < u.support < 0.09 and u.usable
    assert abs(u.unexplained - offset) < max(4 * u.se, 0.03)
    assert (u.z > 10) if offset else (u.margin < 0.05)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_selected_few_rows_left_in_support_invent_no_calibration_shift(seed):
    # the nulls are not random: input "a" lost every value above -2, so the rows left in support are the 2% tail
    # where the surrogate saw least, under a served function that bends there. No offset: what the residual reads
    # is the surrogate's local error, which must stay under the 5% a calibration cause needs (log 1.05)
    rng = np.random.default_rng(seed)
    n = 30_000
    xb, xi = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    xi[xi[:, 0] > -2.0, 0] = np.nan

    def served(x: np.ndarray) -> np.ndarray:
        a = np.nan_to_num(x[:, 0])
        return -2 + 0.9 * a + 0.4 * np.tanh(2 * a) * x[:, 1] - 0.3 * a**2 / (1 + np.abs(a))

    u = unexplained_shift(_frame(xb, served(xb)), _frame(xi, served(xi)), ("a", "b", "c"))
    assert u is not None and u.support < 0.03 and u.rows >= 500 and u.usable
    assert u.margin < math.log(1.05)


def test_the_swap_bounds_the_share_a_snapshot_can_account_for():
    from workbench.model.rescore import SnapshotSwap

    # NE 0.80 -> 0.90; the swap moves it 0.003 +- 0.001: at most 0.3% + 2 x 1% = 5% of the regression is the snapshot's
    swap = SnapshotSwap(served=("v2",), replacement="v1", ne_baseline=0.80, ne_logged=0.90, ne_rescored=0.90, ne_swapped=0.897,
                        rows=10_000, z=3.0, se=0.001)
    assert swap.recovered == pytest.approx(0.03) and swap.recovered_bound == pytest.approx(0.05)
    # no NE regression to share (a calibration-only incident), or no error: nothing bounded
    assert dataclasses.replace(swap, ne_logged=0.79).recovered_bound == float("inf")
    assert dataclasses.replace(swap, se=float("nan")).recovered_bound == float("inf")


def _labelled(x: np.ndarray, y: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"prediction": np.full(len(y), 0.05), "label": y, "a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})


def test_labels_from_inputs_tells_a_population_that_moved_from_labels_that_moved_alone():
    """More premium users (a boolean input 57% -> 75%) raise the clicks through the relation the baseline had: the
    baseline's label model predicts the new label rate. A logging bug that drops 40% of the clicks leaves the inputs
    as they were: it predicts none of it. The relation is P(click | inputs); the served model plays no part."""
    from workbench.model.rescore import labels_from_inputs

    rng = np.random.default_rng(4)
    n = 40_000

    def draw(premium_share: float) -> tuple[np.ndarray, np.ndarray]:
        x = np.column_stack([rng.random(n) < premium_share, rng.standard_normal(n), rng.standard_normal(n)]).astype(float)
        y = (rng.random(n) < sigmoid(-3.6 + 1.4 * x[:, 0] + 0.5 * x[:, 1])).astype(float)
        return x, y

    xb, yb = draw(0.57)
    xi, yi = draw(0.75)
    moved = labels_from_inputs(_labelled(xb, yb), _labelled(xi, yi), ("a", "b", "c"))
    assert moved is not None and moved.observed > 0.1 and moved.share > 0.8, str(moved)
    xl, yl = draw(0.57)
    yl = np.where((yl == 1) & (rng.random(n) < 0.4), 0.0, yl)
    alone = labels_from_inputs(_labelled(xb, yb), _labelled(xl, yl), ("a", "b", "c"))
    assert alone is not None and alone.observed < -0.3 and alone.share < 0.15, str(alone)
    # too few clicks to fit a label model on: no answer rather than a noisy one
    assert labels_from_inputs(_labelled(xb[:2_000], yb[:2_000]), _labelled(xi, yi), ("a", "b", "c")) is None


def test_labels_from_inputs_reads_the_segments_a_traffic_mix_moved():
    """Traffic moves from a segment that clicks 3% to one that clicks 1.5% (50/50 -> 25/75), the inputs unchanged: the
    label rate falls about 20%, and only the segment column carries it. A date column, whose incident values the
    baseline never holds, is no input (it would leave every incident row outside the support)."""
    from workbench.model.rescore import labels_from_inputs

    rng = np.random.default_rng(5)
    n = 60_000

    def draw(ipad_share: float, day: str) -> pl.DataFrame:
        ipad = rng.random(n) < ipad_share
        x = rng.standard_normal((n, 3))
        y = (rng.random(n) < sigmoid(np.where(ipad, -4.2, -3.5) + 0.3 * x[:, 1])).astype(float)
        return _labelled(x, y).with_columns(platform=pl.Series(np.where(ipad, "ipad", "ios")), date=pl.lit(day))

    base, inc = draw(0.5, "2026-06-01"), draw(0.75, "2026-06-02")
    without = labels_from_inputs(base, inc, ("a", "b", "c"))
    # a slice may carry any name, those of the columns the coding makes too (a review: `count` raised)
    base, inc = (frame.rename({"platform": "count"}) for frame in (base, inc))
    with_segments = labels_from_inputs(base, inc, ("a", "b", "c"), slices=("count", "date"))
    assert without is not None and with_segments is not None
    assert with_segments.observed < -0.15 and without.share < 0.2, (str(without), str(with_segments))
    # the mix carries -18% of the -20% (a share of 0.9); the label model's early stopping shrinks a segment's effect
    # (its two rates 1.7x apart, not 1.9x), so it predicts about two thirds
    assert with_segments.share > 0.5 and with_segments.support > 0.95, str(with_segments)
    # a click logger that dropped 40% of the clicks on the old mix: the segments explain none of it
    lost = (draw(0.5, "2026-06-02").rename({"platform": "count"})
            .with_columns(label=pl.col("label") * (pl.Series(rng.random(n)) >= 0.4).cast(pl.Float64)))
    alone = labels_from_inputs(base, lost, ("a", "b", "c"), slices=("count", "date"))
    assert alone is not None and alone.observed < -0.3 and alone.share < 0.15, str(alone)


def test_a_segment_the_baseline_never_had_is_outside_its_support_not_its_nulls():
    """A review's case: a click logger drops 40% of the clicks while a new platform takes 45% of the traffic, and the
    baseline's 3% of rows without a platform click less. Coded as a null, the new platform's rows took the nulls' click
    rate and 28% of the label bug was credited to the inputs; coded as a value of its own, they are outside the
    baseline's support."""
    from workbench.model.rescore import labels_from_inputs

    rng = np.random.default_rng(7)
    n = 40_000

    def draw(null_share: float, new_share: float, lost: float) -> pl.DataFrame:
        u = rng.random(n)
        platform = np.where(u > 1 - new_share, "vision", np.where(u < 0.5, "ipad", "ios")).astype(object)
        null = rng.random(n) < null_share
        x = rng.standard_normal((n, 3))
        z = np.where(null, -5.5, np.where(platform == "ipad", -3.6, -3.4)) + 0.3 * x[:, 1]
        y = (rng.random(n) < sigmoid(z)).astype(float) * (rng.random(n) >= lost)
        platform[null] = None
        return _labelled(x, y).with_columns(platform=pl.Series(platform, dtype=pl.String))

    bug = labels_from_inputs(draw(0.03, 0.0, 0.0), draw(0.0, 0.45, 0.4), ("a", "b", "c"), slices=("platform",))
    assert bug is not None and bug.observed < -0.3 and bug.share < 0.15 and bug.support < 0.7, str(bug)


def test_a_snapshot_whose_output_is_nan_is_compared_on_what_serving_logged(tmp_path):
    """A NaN in a tensor makes the snapshot's re-score NaN on every row, while serving logged what it fell back to:
    the swap compares the log with the replacement instead of leaving no row (which read 'recovers nan%')."""
    import warnings

    case, baseline, incident = _windows("snapshot_corrupt")
    before = snapshot_swap(case, baseline, incident)
    root = with_nan_snapshots(case.root, tmp_path / "case", before.served)
    nan_case = open_case(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        after = snapshot_swap(nan_case, baseline, incident)
    # the log holds the corrupt snapshot's own predictions, so the comparison is the one made before
    assert after.served == before.served and after.rows == before.rows
    assert after.recovered == pytest.approx(before.recovered, abs=0.01) and after.recovered > 0.5
    assert after.z == pytest.approx(before.z, rel=0.05)


def test_a_calibration_regression_is_shared_on_the_calibration():
    """Predictions 1.4 times too high at a 0.2 % click rate move NE by under 1 %: a share of that is noise, and an
    outside test's snapshot "accounted for at most 21 %" of its regression. Measured on the calibration ratio, the
    swap recovers it (the same rows and labels under both snapshots: no label noise in the paired difference), and a
    snapshot that changed nothing recovers none of it."""
    from workbench.model.rescore import SnapshotSwap, _on_calibration

    rng = np.random.default_rng(7)
    n = 200_000
    p_true = 1 / (1 + np.exp(-rng.normal(-6.8, 1.0, n)))
    y_base = (rng.random(n) < p_true).astype(float)
    y_inc = (rng.random(n) < p_true).astype(float)
    bad = np.minimum(p_true * 1.4, 1.0)
    blank = SnapshotSwap(served=("v2",), replacement="v1", ne_baseline=0.91, ne_logged=0.92, ne_rescored=0.92,
                         ne_swapped=0.915, rows=n, z=0.8, se=0.004)
    swap = _on_calibration(blank, p_true, y_base, bad, y_inc, bad, p_true, y_inc)
    assert swap.calibration and swap.cal_logged == pytest.approx(1.4 * swap.cal_swapped, rel=1e-3)
    assert swap.recovered == pytest.approx(1.0, abs=0.15) and swap.z > 10 and swap.recovered_bound > 0.5
    innocent = _on_calibration(blank, p_true, y_base, bad, y_inc, bad, bad, y_inc)  # the swap changes nothing
    assert innocent.recovered == pytest.approx(0.0, abs=1e-9) and innocent.recovered_bound < 0.5
    assert "calibration ratio" in str(swap) and blank.recovered == pytest.approx(0.5)  # NE: 0.005 of 0.01


def test_a_calibration_share_is_bounded_with_the_regressions_own_label_noise():
    """A review's case: at a few dozen clicks a window the logged calibration worsening (the share's denominator) is
    noisy, and bounding the share by the paired difference alone capped a true cause one time in ten. The bound now
    holds the denominator's label noise too; a regression that cannot be measured (no clicks) shares nothing: NaN,
    which the snapshot check reports as such, not "recovers 0 %"."""
    from workbench.model.rescore import SnapshotSwap

    swap = SnapshotSwap(served=("v2",), replacement="v1", ne_baseline=0.91, ne_logged=0.92, ne_rescored=0.92,
                        ne_swapped=0.915, rows=20_000, z=24.0, se=0.005, metric="calibration_ratio", cal_worse=0.30,
                        cal_gain=0.12, cal_worse_se=0.30)
    assert swap.recovered == pytest.approx(0.4)
    assert swap.recovered_bound == pytest.approx(0.4 + 2 * math.hypot(0.005, 0.4 * 0.30) / 0.30)
    assert swap.recovered_bound >= 0.5 > 0.4 + 2 * 0.005 / 0.30  # not capped; the paired error alone would have
    unmeasured = dataclasses.replace(swap, cal_worse=math.nan)
    assert math.isnan(unmeasured.recovered) and unmeasured.recovered_bound == math.inf
    assert math.isnan(dataclasses.replace(swap, metric="normalized_entropy", ne_logged=math.nan).recovered)
