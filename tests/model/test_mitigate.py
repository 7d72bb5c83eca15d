"""Simulated mitigations on sample cases with known injected incidents, and the recovery arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import sample_case
from workbench import Window, open_case
from workbench.model.mitigate import Break, NotSimulated, Simulation, Simulator, _soft_quality, last_good_snapshot, quality, recovery

DAY1, DAY2 = Window("2026-11-19T02:00Z", "2026-11-19T18:00Z"), Window("2026-11-20T02:00Z", "2026-11-20T18:00Z")


def test_recovery_is_the_share_of_the_regression_removed_on_each_metric():
    assert recovery("normalized_entropy", 0.8, 0.9, 0.8) == pytest.approx(1.0)
    assert recovery("normalized_entropy", 0.8, 0.9, 0.95) == pytest.approx(-0.5)
    assert recovery("auc", 0.80, 0.70, 0.78) == pytest.approx(0.8)
    # a ratio: the share of |ln(incident / baseline)| removed; overshooting the baseline counts against it
    assert recovery("calibration_ratio", 1.0, 1.5, 1.0) == pytest.approx(1.0)
    assert recovery("calibration_ratio", 1.0, 1.5, 1 / 1.5) == pytest.approx(0.0)
    assert math.isnan(recovery("normalized_entropy", 0.9, 0.8, 0.7))  # nothing regressed


def test_soft_labels_reduce_to_the_hard_metrics():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.6, 4000)
    y = (rng.uniform(size=4000) < p).astype(float)
    for metric in ("normalized_entropy", "calibration_ratio", "auc", "log_loss"):
        assert _soft_quality(metric, p, y) == pytest.approx(quality(metric, p, y), rel=1e-9), metric


@pytest.fixture(scope="module")
def scale_bug() -> Simulator:  # f_user_ctr_30d divided by 100 a second time from 02:00
    return Simulator(open_case(sample_case("feature_scale_bug")), DAY1, DAY2)


def test_backfill_of_a_unit_change_divides_it_out_and_recovers_the_regression(scale_bug):
    sim = scale_bug.backfill(["f_user_ctr_30d"], {"f_user_ctr_30d": Break("scale", scale_ratio=0.01)})
    assert isinstance(sim, Simulation) and sim.recovery > 0.8
    assert sim.incident > sim.baseline and sim.value < sim.incident
    assert dict(sim.after)["normalized_entropy"] == pytest.approx(sim.value)


def test_fallback_picks_its_serving_choice_out_of_sample(scale_bug):
    sim = scale_bug.fallback(["f_user_ctr_30d"])
    assert isinstance(sim, Simulation) and "even hours" in sim.method
    assert sim.rows < len(scale_bug.incident.y)  # scored on the odd hours only
    assert isinstance(scale_bug.fallback(["no_such_feature"]), NotSimulated)


def test_recalibration_is_fitted_and_scored_on_different_rows():
    sim = Simulator(open_case(sample_case("calibration_shift")), DAY1, DAY2).recalibrate()  # logits x 1.71 from 02:00
    assert isinstance(sim, Simulation) and sim.recovery > 0.5
    params = dict(sim.parameters)
    assert "offset" in params and params["factor"] == pytest.approx(1 / 1.71, rel=0.15)  # the logit scale is undone


def test_last_good_snapshot_is_before_the_bad_one_and_passes_validation():
    case = open_case(sample_case("snapshot_corrupt"))  # ctr-20261120-0009 scaled; later snapshots warm-start from it
    sid, why = last_good_snapshot(case, "ctr-20261120-0009")
    assert case.snapshot(sid).published_at < case.snapshot("ctr-20261120-0009").published_at
    assert "passes validation" in why or why == "marked stable"
    sim = Simulator(case, Window("2026-11-19T00:00Z", "2026-11-19T18:00Z"), Window("2026-11-20T00:00Z", "2026-11-20T18:00Z"))
    rolled = sim.rollback(sid)
    assert isinstance(rolled, Simulation) and rolled.recovery > 0.5
    assert last_good_snapshot(case, case.snapshots[0].snapshot_id) is None  # nothing before the first


def test_without_a_model_a_surrogate_re_scores_the_feature_actions(tmp_path):
    """No model.py: backfill and fallback are re-scored by a surrogate of the logged prediction, which must explain most
    of it (held-out R^2 >= STAND_IN_R2); the backfill's recovery agrees with the model's on the same break."""
    import shutil

    from workbench.model.mitigate import STAND_IN_R2

    src = sample_case("feature_scale_bug")
    shutil.copytree(src, tmp_path / "case")
    (tmp_path / "case" / "model.py").unlink()
    toml = tmp_path / "case" / "workbench.toml"
    toml.write_text(toml.read_text().split("[model]")[0])  # model-free, as the loader's hint says
    free = Simulator(open_case(tmp_path / "case"), DAY1, DAY2)
    assert free.model_problem is not None and free.rescore_problem is None and free._stand_in[1] >= STAND_IN_R2
    breaks = {"f_user_ctr_30d": Break("scale", scale_ratio=0.01)}
    sim = free.backfill(["f_user_ctr_30d"], breaks)
    with_model = Simulator(open_case(src), DAY1, DAY2).backfill(["f_user_ctr_30d"], breaks)
    assert isinstance(sim, Simulation) and "surrogate" in sim.method and sim.recovery > 0.5
    assert sim.recovery == pytest.approx(with_model.recovery, abs=0.25)
    assert isinstance(free.fallback(["f_user_ctr_30d"]), Simulation)
    assert isinstance(free.rollback(open_case(src).snapshots[0].snapshot_id), NotSimulated)  # a rollback needs the model
    free._stand_in = (free._stand_in[0], STAND_IN_R2 - 0.01)  # a surrogate that explains too little is not used
    assert "R^2" in free.rescore_problem and isinstance(free.backfill(["f_user_ctr_30d"], breaks), NotSimulated)


def test_the_pass_one_sample_stands_in_for_a_read_only_when_it_holds_enough_rows():
    import dataclasses

    import polars as pl

    from workbench.case.columns import LABEL, TS
    from workbench.data.scan import log_scan

    case = open_case(sample_case("feature_scale_bug"))
    scan = log_scan(case, segments=False)
    assert scan.sample.height == scan.rows  # a small case: the sample is the whole log, so it always stands in
    cols = [TS, LABEL, *case.features]
    labelled = scan.window_sample(DAY2).filter(pl.col(LABEL).is_not_null()).height
    sim = Simulator(case, DAY1, DAY2, sample=labelled + 1, drawn=scan)
    assert sim._drawn(DAY2, None, cols).height == labelled
    # the same sample taken from a log ten times larger: too few rows to stand in for a read of `sample` rows...
    part = dataclasses.replace(scan, rows=scan.rows * 10)
    assert Simulator(case, DAY1, DAY2, sample=labelled + 1, drawn=part)._drawn(DAY2, None, cols) is None
    # ... enough when `sample` rows are drawn
    assert Simulator(case, DAY1, DAY2, sample=labelled, drawn=part)._drawn(DAY2, None, cols).height == labelled
    # on wide logs the bar is a number of values, not rows: 20k rows up to 500 columns, 10k at 1,000, never under 5k
    assert [Simulator(case, DAY1, DAY2)._wide_enough(c) for c in (20, 250, 500, 1000, 4000)] == [20_000, 20_000, 20_000, 10_000, 5_000]
