"""workbench.data.estimate: label-free NE and calibration for the label-delayed hours, flagged, never mixed with measurements."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from tests.data.analysis_data import write_case
from workbench import metrics as M
from workbench.case.loader import open_case
from workbench.data.estimate import estimate_unlabeled


def test_estimate_tracks_the_hidden_truth_of_delayed_hours(tmp_path):
    root = write_case(tmp_path / "c", seed=51, per_hour=2000, delay_hours=0)
    full = pl.read_parquet(root / "predictions.parquet")
    # hide the labels of the last 5 hours (all of them) and estimate
    cut = full["ts"].max() - pl.duration(hours=5)
    hidden = full.with_columns(pl.when(pl.col("ts") >= full.select(cut).item()).then(None).otherwise(pl.col("label")).alias("label"))
    (tmp_path / "h").mkdir()
    hidden.write_parquet(tmp_path / "h" / "predictions.parquet")
    est = estimate_unlabeled(open_case(tmp_path / "h"))
    delayed = est.delayed
    assert est.delayed_hours == 5 and delayed.height == 5 and delayed["estimated"].all()
    assert delayed["measured_normalized_entropy"].null_count() == 5  # never mixed
    truth = full.filter(pl.col("ts") >= full.select(cut).item())
    true_ne = M.normalized_entropy(truth["prediction"].to_numpy(), truth["label"].to_numpy())
    est_ne = float(np.average(delayed["estimated_normalized_entropy"], weights=delayed["rows"]))
    assert est_ne == pytest.approx(true_ne, rel=0.05)
    assert delayed["estimated_calibration_ratio"].to_numpy() == pytest.approx(1.0, abs=0.08)
    assert est.backtest_mae < 0.05


def test_estimate_carries_a_calibration_change_forward(tmp_path):
    # the serving logits moved by +0.8 from hour 40: the reference (last labeled hours) sees it, so the
    # delayed hours are estimated over-predicting too
    est = estimate_unlabeled(open_case(write_case(tmp_path / "c", seed=52, onset=40, break_="calibration", per_hour=1500)))
    assert (est.delayed["estimated_calibration_ratio"] > 1.3).all(), str(est)
    doc = json.loads(json.dumps(est.to_dict()))
    assert doc["delayed_hours"] == est.delayed_hours and "CBPE" in str(est)
