"""The calibration check beside a broken feature: without a model, the prediction shift no input explains decides."""

from __future__ import annotations

import math

from tests.conftest import dev_case
from workbench import diagnose, open_case
from workbench.rca.checks.calibration import calibration
from workbench.rca.context import Context


def test_a_calibration_shift_beside_a_broken_feature_is_named_too(tmp_path):
    # multi/coverage_plus_calibration (dev seed 2, no model.py): every served logit moved by -0.35 and a feature lost
    # 27% of its values. The broken feature used to rule the calibration out; the counterfactual finds the shift
    path, truth = dev_case(tmp_path, "multi", "coverage_plus_calibration", 2)
    assert not truth["files"]["model"]
    offset = truth["incident"]["logit_offset"]
    ctx = Context(open_case(path))
    ev = calibration(ctx)
    u = ctx.cached("unexplained_shift", lambda: None)
    assert u is not None and u.usable and abs(u.unexplained - offset) < 0.05 and u.share > 0.5
    assert ev.candidates and ev.score > 0.3
    named = {(c.kind, c.target) for c in diagnose(path).root_causes[:3]}
    assert {(c["kind"], c["target"]) for c in truth["causes"]} <= named


def test_a_broken_feature_alone_leaves_no_calibration_cause(tmp_path):
    # feature/coverage_null (dev seed 1, no model.py): the predictions fell 1.5 logits, all through the broken input
    path, truth = dev_case(tmp_path, "feature", "coverage_null", 1)
    ctx = Context(open_case(path))
    ev = calibration(ctx)
    u = ctx.cached("unexplained_shift", lambda: None)
    assert u is None or u.margin < 0.05 or not u.usable
    assert ctx.cached("calibration_spared", lambda: None) is None  # every incident row lost the feature: none spared
    assert ev.score < 0.2
    assert diagnose(path).root_causes[0].target == truth["target"]


def test_the_rows_a_lost_feature_spared_did_not_move(tmp_path):
    # feature/coverage_null (dev seed 12): the rows that kept the feature are as calibrated as before
    path, _ = dev_case(tmp_path, "feature", "coverage_null", 12)
    ctx = Context(open_case(path))
    ev = calibration(ctx)
    spared = ctx.cached("calibration_spared", lambda: None)
    assert spared is not None and spared.rows_incident > 10_000 and abs(spared.z) < 3, str(spared)
    assert ev.score < 0.2


def test_a_residual_along_two_inputs_x1000_is_not_a_calibration_cause(tmp_path):
    # multi/two_features (dev seed 0, no model.py): two inputs x1000 moved the predictions by 6.5 logits; the tree
    # surrogate followed them 5.5 of the way (it does not extrapolate) and the 1.0 left went in the same direction. That
    # residual named "calibration" first at 0.68; along the inputs' move it is weakened by them in the share they explain
    path, truth = dev_case(tmp_path, "multi", "two_features", 0)
    assert not truth["files"]["model"]
    ctx = Context(open_case(path))
    ev = calibration(ctx)
    u = ctx.cached("unexplained_shift", lambda: None)
    assert u is not None and u.usable and u.unexplained * u.explained > 0 and u.share < 0.25
    assert ev.score < 0.15
    causes = diagnose(path).root_causes
    assert "calibration" not in {c.kind for c in causes}
    named = {c.target: c.change for c in causes}
    assert all(named.get(c["target"]) == "scale" for c in truth["causes"])  # both features, read as unit changes


def test_the_rows_a_lost_feature_spared_show_the_calibration_shift_beside_it(tmp_path):
    # multi/coverage_plus_calibration (dev seed 3, no model.py): the served logits moved by an offset that carries 79% of
    # the regression, and a feature lost most of its values. On the rows that kept the feature the break explains
    # nothing, and the calibration ratio moved by the offset alone: the calibration cause comes first (it came second
    # at 0.20 while only the surrogate's residual, weakened by the worse ranking of the whole traffic, spoke for it)
    path, truth = dev_case(tmp_path, "multi", "coverage_plus_calibration", 3)
    assert not truth["files"]["model"]
    target = truth["incident"]["target_ratio"]  # the served odds' offset as a calibration ratio
    ctx = Context(open_case(path))
    calibration(ctx)
    spared = ctx.cached("calibration_spared", lambda: None)
    assert spared is not None and spared.z > 5 and abs(spared.log_change - math.log(target)) < 0.1, (str(spared), target)
    assert spared.by_predictions > 0.8
    causes = diagnose(path).root_causes
    assert causes[0].kind == "calibration"
    assert {(c["kind"], c["target"]) for c in truth["causes"]} <= {(c.kind, c.target) for c in causes[:3]}


def test_rows_spared_by_a_lost_feature_are_not_spared_by_a_scaled_one(tmp_path):
    # multi/two_features (dev seed 8): one input scaled, one lost coverage. The rows that kept the second still carry
    # the first's unit change, so they are not a calibration reading (they named "calibration" at 0.51)
    path, _ = dev_case(tmp_path, "multi", "two_features", 8)
    ctx = Context(open_case(path))
    calibration(ctx)
    assert ctx.cached("calibration_spared", lambda: None) is None
    assert "calibration" not in {c.kind for c in diagnose(path).root_causes}


def _serving_changed(tmp_path, how: str):
    """A clean 96-hour log whose served predictions change row by row from hour 50, with the inputs and the labels as
    they were: ``constant`` (serving falls back to the window's mean prediction) or ``lookup`` (each row gets the
    prediction of another row with the same country: a lookup on the wrong key, the mean and the marginal kept)."""
    import numpy as np
    import polars as pl

    from tests.data.analysis_data import write_case

    path = write_case(tmp_path / "c", seed=31, hours=96, per_hour=1200)
    frame = pl.read_parquet(path / "predictions.parquet")
    after = (frame["ts"] >= frame["ts"].min() + np.timedelta64(50, "h")).to_numpy()
    p = frame["prediction"].to_numpy().copy()
    if how == "constant":
        p[after] = p[after].mean()
    else:
        p[after] = np.random.default_rng(31).permutation(p[after])
    frame.with_columns(pl.Series("prediction", p)).write_parquet(path / "predictions.parquet")
    return path


def test_predictions_that_came_loose_from_their_inputs_are_a_serving_change_not_labels(tmp_path):
    for how in ("constant", "lookup"):
        found = diagnose(_serving_changed(tmp_path / how, how))
        top = found.root_causes[0]
        assert (top.kind, top.target) == ("calibration", "calibration"), (how, found.root_causes)
        assert "came loose from their logged inputs" in top.summary
        assert all(c.kind != "label" for c in found.root_causes), (how, found.root_causes)
        u = found.results["unexplained_shift"]
        assert u.came_loose > 0.3 and u.came_loose_z > 10, (how, u.to_dict())


def test_labels_that_came_loose_leave_the_predictions_following_their_inputs(tmp_path):
    from tests.rca.test_label_check import _balanced_case
    from workbench.model.rescore import unexplained_shift
    from workbench.rca.checks.calibration import came_loose

    found = diagnose(_balanced_case(tmp_path / "c", 12, loose=True))
    base, inc = found.results["window_rows"]
    u = unexplained_shift(base, inc, found.case.features)
    assert u is not None and u.came_loose < 0.02 and came_loose(u) == 0.0, u.to_dict()
    assert found.root_causes[0].kind == "label"


def test_a_segment_whose_scale_moved_as_one_did_not_come_loose(tmp_path):
    # every logit in KR +0.8 from hour 50: the residual moves with the segment's cell, and within cells it holds
    from tests.data.analysis_data import write_case
    from workbench.model.rescore import unexplained_shift

    found = diagnose(write_case(tmp_path / "c", seed=33, hours=96, per_hour=1200, onset=50, break_="calibration",
                                slice_=("country", "KR")))
    base, inc = found.results["window_rows"]
    within = unexplained_shift(base, inc, found.case.features, by=found.case.slices)
    pooled = unexplained_shift(base, inc, found.case.features)
    assert within is not None and pooled is not None
    assert within.came_loose < 0.01 < pooled.came_loose, (within.to_dict(), pooled.to_dict())
    assert found.root_causes[0].kind == "slice" and found.root_causes[0].target == "country=KR", found.root_causes
