"""workbench.data.labels: a label-side change is told apart from model- and feature-side ones; delay is profiled."""

from __future__ import annotations

import json

import pytest

from tests.conftest import sample_case
from tests.data.analysis_data import write_case
from workbench.case.loader import open_case
from workbench.data.labels import label_delay, label_shift
from workbench.data.onset import detect_onset


def _shift(case):
    onset = detect_onset(case)
    return label_shift(case, onset.baseline, onset.incident)


def test_label_drift_sample_moves_labels_alone():
    shift = _shift(open_case(sample_case("label_drift")))
    assert shift.labels_moved_alone, str(shift)
    assert shift.label_rate_change < -0.2 and abs(shift.label_z) > 5 and shift.features_broken == ()


@pytest.mark.parametrize("name", ["control", "calibration_shift", "feature_stale", "upstream_break", "snapshot_bad_data"])
def test_other_cases_are_not_label_only(name):
    shift = _shift(open_case(sample_case(name)))
    assert not shift.labels_moved_alone, str(shift)


@pytest.mark.parametrize(("break_", "alone"), [("labels", True), ("calibration", False), ("coverage", False)])
def test_synthetic_label_side_versus_model_side(tmp_path, break_, alone):
    shift = _shift(open_case(write_case(tmp_path / "c", seed=31, onset=50, break_=break_)))
    assert shift.labels_moved_alone is alone, str(shift)
    if not alone:
        assert abs(shift.prediction_z) > 3


def test_label_delay_profile_matches_the_onset_trim(tmp_path):
    case = open_case(write_case(tmp_path / "c", seed=32, delay_hours=5))
    delay = label_delay(case)
    assert delay.delay_hours == detect_onset(case).label_delay_hours
    assert 3 <= delay.delay_hours <= 5 and delay.typical_join_rate == pytest.approx(1.0)
    late = delay.table.filter(~delay.table["reliable"])
    assert late["completeness"].is_sorted(descending=True) and (late["age_hours"] < 6).all()
    doc = json.loads(json.dumps(delay.to_dict()))
    assert doc["reliable_until"].endswith("Z") and "still waiting" in str(delay)
    assert json.loads(json.dumps(_shift(case).to_dict()))["labels_moved_alone"] is False
