"""workbench.data.onset: onsets within 2 h on every sample case, no alarm without an incident (cycle and label delay included)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from tests.conftest import sample_case, sample_cases
from tests.data.analysis_data import START, write_case
from workbench.case.loader import open_case
from workbench.data.onset import Onsets, detect_onset, detect_onsets
from workbench.data.quality import quality_series
from workbench.errors import WorkbenchError


def _truth(path):
    truth = json.loads((path / "truth.json").read_text())
    onset = datetime.fromisoformat(truth["onset"].replace("Z", "+00:00")) if truth["onset"] else None
    return truth, onset


@pytest.mark.parametrize("path", sample_cases(), ids=lambda p: p.name)
def test_every_sample_case_onset_within_two_hours_and_control_silent(path):
    _, onset = _truth(path)
    found = detect_onset(open_case(path))
    assert found.metric == "normalized_entropy"
    if onset is None:
        assert not found.detected, str(found)
        return
    assert found.detected, str(found)
    assert abs((found.onset - onset) / timedelta(hours=1)) <= 2, str(found)
    # the incident window starts at the onset and ends before the label-delayed hours
    assert found.incident.start == found.onset and found.label_delay_hours > 0
    assert found.baseline.end <= found.incident.start
    assert found.current_value > found.baseline_value


def test_control_raises_no_alarm_on_any_metric():
    onsets = detect_onsets(open_case(sample_case("control")))
    assert isinstance(onsets, Onsets) and not onsets.detected and onsets.earliest is None
    # default windows: the last reliably labeled day and the day before, so later checks can run
    primary = onsets.primary
    assert primary.incident.duration == timedelta(hours=24) and primary.baseline.end == primary.incident.start


@pytest.mark.parametrize("seed", range(12))
def test_no_false_alarm_with_daily_cycle_and_biased_label_delay(tmp_path, seed):
    # late labels are more often clicks, so the joined share of the latest hours looks click-poor
    case = open_case(write_case(tmp_path / "c", seed=100 + seed, delay_bias=0.6))
    onsets = detect_onsets(case)
    assert not onsets.detected, str(onsets)
    assert onsets.primary.severity < onsets.primary.threshold


@pytest.mark.parametrize("kind", ["signal", "coverage", "scale", "stale", "calibration", "labels"])
def test_injected_regressions_are_found_at_their_hour(tmp_path, kind):
    case = open_case(write_case(tmp_path / "c", seed=7, onset=52, break_=kind))
    found = detect_onset(case)
    assert found.detected and found.onset == START + timedelta(hours=52), str(found)
    # the baseline is the same hours of day one day earlier
    assert found.baseline.start == found.incident.start - timedelta(hours=24)
    assert found.baseline.duration == found.incident.duration


def test_label_incident_shows_in_label_rate_and_calibration(tmp_path):
    onsets = detect_onsets(open_case(write_case(tmp_path / "c", seed=3, onset=50, break_="labels")))
    assert onsets.by_metric["label_rate"].detected and onsets.by_metric["calibration_ratio"].detected
    assert not onsets.by_metric["prediction_mean"].detected


def test_series_reuse_json_and_errors(small_case_template):
    series = quality_series(open_case(small_case_template))
    found = detect_onset(series, "log_loss")
    doc = json.loads(json.dumps(found.to_dict()))
    assert doc["metric"] == "log_loss" and doc["incident_window"]["end"].endswith("Z")
    assert {"window", "value", "expected", "z", "used"} <= set(found.series.columns)
    assert "log_loss" in str(found)
    with pytest.raises(WorkbenchError, match="use one of"):
        detect_onset(series, "accuracy")
    with pytest.raises(WorkbenchError, match="without by="):
        detect_onset(quality_series(open_case(small_case_template), by="platform"))


def test_anomaly_falls_back_to_the_calibration_ratio(tmp_path):
    # a mild logit offset: NE may stay within noise while calibration clearly moved
    onsets = detect_onsets(open_case(write_case(tmp_path / "c", seed=8, onset=52, break_="calibration", per_hour=300)))
    cal = onsets.by_metric["calibration_ratio"]
    assert cal.detected
    assert onsets.anomaly.detected and onsets.anomaly.onset == (onsets.primary.onset if onsets.primary.detected else cal.onset)
