"""Values out of scale on a minority of the rows (a parser bug): under the distance floor, and a break all the same."""

from __future__ import annotations

import numpy as np
import polars as pl

from tests.data.analysis_data import write_case
from workbench import diagnose, guard, open_case
from workbench.data.drift import OUT_OF_BAND, out_of_band
from workbench.windows import Window


def _tails(tmp_path, share: float):
    """From hour 50, ``share`` of the rows get ``f_b`` x 10,000, and the model scores those values (f_b is a
    lognormal around 1, read through its log: +5.5 logits on those rows)."""
    path = write_case(tmp_path / "c", seed=41, hours=96, per_hour=1200)
    frame = pl.read_parquet(path / "predictions.parquet")
    rng = np.random.default_rng(41)
    hit = ((frame["ts"] >= frame["ts"].min() + np.timedelta64(50, "h")).to_numpy() & (rng.random(frame.height) < share))
    f_b = frame["f_b"].to_numpy().copy()
    f_b[hit] *= 1e4
    z = np.log(frame["prediction"].to_numpy() / (1 - frame["prediction"].to_numpy())) + np.where(hit, 0.6 * np.log(1e4), 0)
    frame.with_columns(pl.Series("f_b", f_b), pl.Series("prediction", 1 / (1 + np.exp(-z)))) \
        .write_parquet(path / "predictions.parquet")
    return path, frame["ts"].min()


def test_five_percent_of_values_out_of_scale_are_named_as_a_scale_break(tmp_path):
    path, start = _tails(tmp_path, 0.05)
    found = diagnose(path)
    drift = found.results["feature_drift"].table.filter(pl.col("feature") == "f_b").row(0, named=True)
    assert drift["js"] < 0.1 and abs(out_of_band(drift) - 0.05) < 0.01  # under the distance floor, 5% out of scale
    top = found.root_causes[0]
    assert (top.kind, top.target, top.change) == ("feature", "f_b", "scale"), found.root_causes
    # the guard on a day after the onset trips its scale monitor instead of calling it a clock feature's usual move
    report = guard(open_case(path), Window(start + np.timedelta64(51, "h"), start + np.timedelta64(75, "h")))
    scale = next(m for m in report.monitors if m.monitor == "feature_scale" and m.target == "f_b")
    assert scale.status == "trip" and "out of scale" in scale.detail, scale
    gate = next(m for m in report.monitors if m.monitor == "snapshot_gate")  # a case without snapshots says so
    assert gate.status == "skip" and gate.detail == "no snapshots/index.csv"


def test_a_handful_of_values_out_of_scale_is_not_a_break(tmp_path):
    path, start = _tails(tmp_path, 0.002)
    from workbench.data.drift import feature_drift

    table = feature_drift(open_case(path), Window(start, start + np.timedelta64(50, "h")),
                          Window(start + np.timedelta64(50, "h"), start + np.timedelta64(96, "h"))).table
    assert 0 < out_of_band(table.filter(pl.col("feature") == "f_b").row(0, named=True)) < OUT_OF_BAND
    assert all(c.change != "scale" for c in diagnose(path).root_causes)


def test_without_a_model_a_feature_never_null_before_is_not_served_as_null(tmp_path):
    # the stand-in surrogate never saw f_b missing in the baseline: what it says a null does is an extrapolation, so the
    # fallback picks among the baseline median and baseline values only
    path, _ = _tails(tmp_path, 0.05)
    found = diagnose(path)
    fallbacks = [m for m in found.root_causes[0].mitigations if m.action == "fallback"]
    assert fallbacks and all(m.serve in ("median", "baseline") for m in fallbacks), fallbacks
    assert all("best of 2 serving choices" in m.predicted.method for m in fallbacks)


def test_a_clock_feature_out_of_a_short_baselines_band_is_not_a_scale_break(tmp_path):
    # hour_of_week over a two-day baseline holds two days of the week; the next day's values (Monday after Sunday: 0-23
    # against 144-167) fall under a tenth of its ~1st percentile by the calendar alone. The diagnosis and the guard
    # leave it out of the out-of-scale reading
    from workbench.data.calendar import calendar_features
    from workbench.model.rescore import sample_window

    path = write_case(tmp_path / "c", seed=43, hours=96, per_hour=1200)
    frame = pl.read_parquet(path / "predictions.parquet").with_columns(pl.col("ts") + pl.duration(days=5))  # Sat-Tue
    how = (frame["ts"].dt.weekday().cast(pl.Int32) - 1) * 24 + frame["ts"].dt.hour().cast(pl.Int32)
    frame.with_columns(how.cast(pl.Float64).alias("hour_of_week")).write_parquet(path / "predictions.parquet")
    (path / "workbench.toml").write_text('[columns]\nfeatures = ["f_a", "f_b", "f_c", "hour_of_week"]\n')
    case = open_case(path)
    saturday = frame["ts"].min().replace(minute=0, second=0, microsecond=0)
    assert saturday.weekday() == 5
    # a Saturday-and-Sunday baseline against the Monday after it
    baseline = Window(saturday, saturday + np.timedelta64(48, "h"))
    monday = Window(saturday + np.timedelta64(48, "h"), saturday + np.timedelta64(72, "h"))
    rows = sample_window(case, baseline, 20_000, seed=0)
    assert calendar_features(rows, rows, case.features, follow=False) == {"hour_of_week": "hour of week"}
    from workbench.data.drift import feature_drift

    row = feature_drift(case, baseline, monday).table.filter(pl.col("feature") == "hour_of_week").row(0, named=True)
    assert out_of_band(row) > 0.3  # out of the weekend's band by the calendar alone
    report = guard(case, monday)
    scale = next(m for m in report.monitors if m.monitor == "feature_scale" and m.target == "hour_of_week")
    assert scale.status == "pass" and "out of scale" not in scale.detail, scale
