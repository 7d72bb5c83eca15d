"""The latest hours still waiting for labels are left out of detection; the answer says so, and when the served
predictions moved there beyond their day-to-day range it says how to test them (``pending_labels``)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from tests.data.analysis_data import write_case
from workbench import Window, diagnose, open_case
from workbench.data.onset import detect_onset, pending_labels


def _late_labels(path, hours: int, share: float, seed: int = 0):
    """Leave ``share`` of the labels of the last ``hours`` hours unjoined, at random (a label join running late)."""
    frame = pl.read_parquet(path / "predictions.parquet")
    cut = frame["ts"].max() - np.timedelta64(hours, "h")
    drop = pl.Series(np.random.default_rng(seed).random(frame.height) < share)
    frame.with_columns(pl.when((pl.col("ts") >= cut) & drop).then(None).otherwise(pl.col("label")).alias("label")) \
        .write_parquet(path / "predictions.parquet")
    return path


def test_a_break_in_hours_still_waiting_for_labels_is_not_called_no_regression(tmp_path):
    # f_b served x100 for the last 30 hours of ten days, while half of those hours' labels have not joined yet: the
    # detector leaves them out, so the tested windows show nothing. The answer names the hours and the predictions'
    # move there, in the text and in the JSON, with the command that tests them
    path = _late_labels(write_case(tmp_path / "c", seed=3, hours=240, per_hour=600, onset=210, break_="scale"), 36, 0.5)
    onset = detect_onset(open_case(path))
    pending = pending_labels(onset)
    assert pending is not None and pending.window.duration.total_seconds() >= 30 * 3600
    assert pending.moved and abs(pending.prediction_z) > 3 and pending.cycles >= 3, str(pending)
    found = diagnose(path)
    entry = [s for s in found.to_dict()["skipped"] if s["check"] == "prediction_quality"]
    assert len(entry) == 1 and "--incident" in entry[0]["reason"]
    assert "note: the latest" in str(found)
    assert "still wait for labels" in found.evidence("prediction_quality").summary
    json.dumps(found.to_dict())
    start, end = entry[0]["reason"].split("--incident ")[1].split("/")
    incident = Window(start, end)  # what `--incident` alone does: the preceding span of equal length is the baseline
    tested = diagnose(path, baseline=Window(incident.start - incident.duration, incident.start), incident=incident)
    assert tested.anomaly["detected"]
    assert (tested.top.kind, tested.top.target) == ("feature", "f_b")

def test_a_healthy_tail_still_waiting_for_labels_is_said_but_not_flagged(tmp_path):
    path = _late_labels(write_case(tmp_path / "c", seed=4, hours=240, per_hour=600), 36, 0.5)
    pending = pending_labels(detect_onset(open_case(path)))
    assert pending is not None and pending.cycles >= 3 and not pending.moved, str(pending)
    assert abs(np.log(pending.prediction_mean / pending.prediction_mean_before)) < 0.03
    found = diagnose(path)
    assert not [s for s in found.to_dict()["skipped"] if s["check"] == "prediction_quality"]
    assert "still wait for labels" in found.evidence("prediction_quality").summary
    assert not found.anomaly["detected"]
