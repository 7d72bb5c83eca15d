"""workbench.data.calibration: reliability curves from the shared partials; the calibration-only signature."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from tests.conftest import sample_case
from tests.data.analysis_data import write_case
from workbench import metrics as M
from workbench.case.loader import open_case
from workbench.data.calibration import calibration_of_rows, calibration_shift, reliability
from workbench.data.onset import detect_onset
from workbench.errors import WorkbenchError
from workbench.windows import Window


def _shift(case):
    onset = detect_onset(case)
    return calibration_shift(case, onset.baseline, onset.incident)


def test_calibration_shift_sample_is_calibration_only():
    shift = _shift(open_case(sample_case("calibration_shift")))
    assert shift.calibration_only and shift.ranking_steady and shift.calibration_moved, str(shift)


@pytest.mark.parametrize("name", ["label_drift", "feature_stale", "slice_shift", "control"])
def test_other_causes_are_not_calibration_only(name):
    shift = _shift(open_case(sample_case(name)))
    assert not shift.calibration_only, str(shift)


@pytest.mark.parametrize(("break_", "only"), [("calibration", True), ("signal", False), ("labels", False)])
def test_synthetic_signatures(tmp_path, break_, only):
    shift = _shift(open_case(write_case(tmp_path / "c", seed=41, onset=50, break_=break_, per_hour=1500)))
    assert shift.calibration_only is only, str(shift)
    if break_ == "calibration":
        assert abs(shift.auc_incident - shift.auc_baseline) < 0.01 and shift.calibration_ratio_incident > 1.3


def test_reliability_bins_and_ece_match_numpy(small_case_template):
    case = open_case(small_case_template)
    w = Window.hours("2026-11-18T00:00:00Z", 24)
    raw = pl.read_parquet(small_case_template / "predictions.parquet").filter(pl.col("ts").is_between(w.start, w.end, closed="left"))
    p, y = raw["prediction"].to_numpy(), raw["label"].to_numpy().astype(float)
    q = reliability(case, w, bins=5)
    assert q.table["labeled"].sum() == len(y) and q.table.height == 5
    assert np.allclose(q.table["labeled"].to_numpy(), len(y) / 5, rtol=0.15)  # equal labeled mass
    assert q.ece == pytest.approx(M.ece(p, y), abs=1e-12) and q.calibration_ratio == pytest.approx(p.sum() / y.sum())
    u = reliability(case, w, bins=4, strategy="uniform")
    assert u.ece == pytest.approx(M.ece(p, y, bins=4), abs=1e-12)
    assert (q.table["ci_low"] <= q.table["label_rate"]).all() and (q.table["label_rate"] <= q.table["ci_high"]).all()
    assert len(q.pairs()) == 5 and json.loads(json.dumps(q.to_dict()))["strategy"] == "quantile"
    with pytest.raises(WorkbenchError, match="use one of"):
        reliability(case, w, strategy="isotonic")


def test_shift_serializes(small_case_template):
    shift = _shift(open_case(small_case_template))
    doc = json.loads(json.dumps(shift.to_dict()))
    assert doc["reliability_incident"]["table"] and "AUC" in str(shift)


def _rows(rng, cells: dict[str, tuple[int, float, float]]) -> pl.DataFrame:
    """Labelled rows per slice cell: ``cell -> (rows, click rate, served / true odds)``."""
    parts = []
    for cell, (n, rate, odds) in cells.items():
        y = (rng.random(n) < rate).astype(np.int8)
        p = odds * rate / (1 - rate + odds * rate)  # the true rate with its odds multiplied by ``odds``
        parts.append(pl.DataFrame({"prediction": np.full(n, p), "label": y, "surface": [cell] * n}))
    return pl.concat(parts)


def test_calibration_of_rows_reweights_the_baseline_to_the_incident_mix():
    # each cell keeps its own calibration (feed 1.5x over, search calibrated); the incident's rows are nearly all feed.
    # Unweighted, the ratio "moves" by the mix alone; reweighted to the incident's cells it does not
    rng = np.random.default_rng(7)
    before = _rows(rng, {"feed": (20_000, 0.05, 1.5), "search": (20_000, 0.10, 1.0)})
    after = _rows(rng, {"feed": (18_000, 0.05, 1.5), "search": (2_000, 0.10, 1.0)})
    got = calibration_of_rows(before, after, ("surface",))
    assert got is not None and abs(got.z) < 3, str(got)
    naive = calibration_of_rows(before, after)
    assert naive is not None and naive.z > 4  # the same rows without the cells: the mix reads as a move
    sums = before.group_by("surface").agg(pl.col("prediction").sum(), pl.col("label").sum(), pl.len()).sort("surface")
    w = np.array([18_000 / 20_000, 2_000 / 20_000])
    want = float((w * sums["prediction"].to_numpy()).sum() / (w * sums["label"].to_numpy()).sum())
    assert got.ratio_baseline == pytest.approx(want, rel=1e-9)
    assert got.ratio_incident == pytest.approx(after["prediction"].sum() / after["label"].sum(), rel=1e-9)
    assert got.auc_baseline == pytest.approx(M.auc(before["prediction"].to_numpy(), before["label"].to_numpy()))


def test_calibration_of_rows_reads_a_served_shift_as_the_predictions_move():
    rng = np.random.default_rng(8)
    before = _rows(rng, {"feed": (30_000, 0.08, 1.0)})
    after = _rows(rng, {"feed": (30_000, 0.08, 1.5)})  # the served odds x1.5: the labels stay, the predictions move
    got = calibration_of_rows(before, after, ("surface",))
    assert got is not None
    assert got.log_change == pytest.approx(np.log(1.5 * 1 / (1 - 0.08 + 1.5 * 0.08)), abs=0.04)
    assert got.z > 10 and got.by_predictions > 0.8
    assert calibration_of_rows(before.head(100), after) is None  # 8 clicks: too few to read a ratio from
