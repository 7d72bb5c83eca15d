"""The traffic mix (:mod:`workbench.data.mix`): a move the mix carries is a finding, not a regression."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from tests.data.analysis_data import START, write_case
from workbench import Window, detect_onset, diagnose, open_case
from workbench.data._sums import window_cells
from workbench.data.mix import MAX_UNCOMMON, mix_readings

# NG's share goes from 10 % to 45 % at hour 50; the model serves NG 0.6 higher in logit than it should, all along
MIX = (50, "NG", 0.45, 0.6)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_mix_that_moves_calibration_is_a_traffic_finding_not_a_regression(tmp_path, seed):
    case = open_case(write_case(tmp_path / "c", seed=seed, onset=None, mix=MIX))
    whole = detect_onset(case, mix=False)
    cal = whole.verdict("calibration_ratio")
    assert whole.detected and cal is not None and cal.regressed and cal.current / cal.baseline > 1.1, str(whole)
    found = detect_onset(case)
    assert not found.detected, str(found)
    reading = next(r for r in found.mix if r.metric == "calibration_ratio")
    assert reading.column == "country" and reading.shares[0][0] == "NG"
    _, before, after = reading.shares[0]
    assert before == pytest.approx(0.1, abs=0.03) and after > 0.35
    v = reading.values
    assert abs(math.log(v["within"] / v["baseline"])) < math.log(1.05) < math.log(v["current"] / v["baseline"])
    assert abs(math.log(v["current"] / v["shifted"])) < math.log(1.05)  # at the incident's mix too
    assert "traffic mix of 'country'" in (found.mixed() or "") and "not a regression" in str(found)


def test_a_diagnosis_of_a_mix_names_it_and_no_cause(tmp_path):
    case = open_case(write_case(tmp_path / "c", seed=0, onset=None, mix=MIX))
    d = diagnose(case)
    assert not d.anomaly["detected"] and not d.root_causes
    assert "the traffic mix of 'country' moved calibration_ratio from" in str(d) and "(NG 10% → 4" in str(d)
    assert "traffic-mix finding" in d.evidence("prediction_quality").summary


@pytest.mark.parametrize("seed", [0, 1])
def test_a_segment_that_breaks_as_it_grows_is_still_a_regression(tmp_path, seed):
    """NG's served logits + 0.5 from hour 50 as its share goes from 10 % to 45 %: at the baseline's mix NG weighs 10 %
    and the whole move nearly vanishes (a review found the first version read it as the mix's); at the incident's
    mix it weighs 45 %, and the move within the segments stays."""
    case = open_case(write_case(tmp_path / "c", seed=seed, onset=50, break_="calibration", offset=0.5,
                                slice_=("country", "NG"), mix=(50, "NG", 0.45, 0.0)))
    found = detect_onset(case)
    assert found.detected and found.verdict("calibration_ratio").regressed, str(found)
    assert not found.mix


def test_a_calibration_break_beside_a_mix_shift_is_still_a_regression(tmp_path):
    """Standardizing takes out the mix's part only: a 16 % calibration break at the same hour stays (within the
    segments it moved them all)."""
    case = open_case(write_case(tmp_path / "c", seed=0, onset=50, break_="calibration", offset=0.15, mix=MIX))
    found = detect_onset(case)
    assert found.detected and found.metric == "calibration_ratio", str(found)
    assert not any(r.metric == "calibration_ratio" for r in found.mix)
    assert abs(found.onset - (START + timedelta(hours=50))) <= timedelta(hours=1)


def test_the_incident_at_the_baseline_mix_is_the_direct_standardization_of_its_rows(tmp_path):
    """Cross-check against the textbook formula on the rows: sum over countries of the baseline's share times the
    incident's mean prediction, over the same for the clicks (labelled rows)."""
    root = write_case(tmp_path / "c", seed=3, onset=None, mix=MIX)
    case = open_case(root)
    baseline, incident = Window(START, START + timedelta(hours=48)), Window(START + timedelta(hours=50), START + timedelta(hours=66))
    cells = window_cells(case, baseline, incident, ("country", "device"))
    [reading] = mix_readings(cells, ("country",), ("calibration_ratio",), baseline, incident)
    rows = pl.read_parquet(root / "predictions.parquet").filter(pl.col("label").is_not_null())
    part = {name: rows.filter((pl.col("ts") >= w.start) & (pl.col("ts") < w.end)) for name, w in
            (("b", baseline), ("i", incident))}
    share = part["b"].group_by("country").len().with_columns(pl.col("len") / pl.col("len").sum())
    means = part["i"].group_by("country").agg(pl.col("prediction").mean().alias("p"), pl.col("label").mean().alias("y"))
    joined = share.join(means, on="country")
    expected = float((joined["len"] * joined["p"]).sum() / (joined["len"] * joined["y"]).sum())
    assert reading.values["within"] == pytest.approx(expected, rel=1e-9)
    assert reading.values["current"] == pytest.approx(float(part["i"]["prediction"].sum() / part["i"]["label"].sum()), rel=1e-9)
    # the other way: the baseline's means at the incident's shares
    share_i = part["i"].group_by("country").len().with_columns(pl.col("len") / pl.col("len").sum())
    means_b = part["b"].group_by("country").agg(pl.col("prediction").mean().alias("p"), pl.col("label").mean().alias("y"))
    other = share_i.join(means_b, on="country")
    shifted = float((other["len"] * other["p"]).sum() / (other["len"] * other["y"]).sum())
    assert reading.values["shifted"] == pytest.approx(shifted, rel=1e-9)
    # a column read by another: device's shares did not move, so its standardization leaves the move as it was
    [by_device] = mix_readings(cells, ("device",), ("calibration_ratio",), baseline, incident)
    assert by_device.values["within"] == pytest.approx(by_device.values["current"], rel=0.02)


def test_a_column_whose_values_came_or_went_is_not_read():
    """Values only one window holds, beyond MAX_UNCOMMON of its labelled rows, are a population reweighting cannot
    bring back: the column is not read; under it, it is read over the values both hold."""
    def cells(gone: float) -> pl.DataFrame:
        labeled = [1000.0, 1000.0 * gone / (1 - gone), 1000.0]
        return pl.DataFrame({"_period": ["baseline", "baseline", "incident"], "c": ["a", "b", "a"],
                             "rows": labeled, "labeled": labeled, "positives": [50.0, 50.0, 60.0],
                             "pred_sum": [55.0, 40.0, 55.0], "pred_sq_sum": [5.0, 5.0, 5.0],
                             "pred_sum_labeled": [55.0, 40.0, 55.0], "ll_sum": [200.0, 200.0, 200.0],
                             "ll_sq_sum": [100.0, 100.0, 100.0], "ll_pos_sum": [150.0, 150.0, 150.0]})
    w = Window(START, START + timedelta(hours=1))
    assert mix_readings(cells(MAX_UNCOMMON * 1.5), ("c",), ("calibration_ratio",), w, w) == []
    [r] = mix_readings(cells(MAX_UNCOMMON * 0.5), ("c",), ("calibration_ratio",), w, w)
    assert r.values["baseline"] == pytest.approx(55 / 50) and r.values["within"] == pytest.approx(55 / 60)
    assert np.isfinite(r.values["current"]) and r.values["shifted"] == pytest.approx(55 / 50)
