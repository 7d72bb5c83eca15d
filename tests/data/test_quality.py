"""workbench.data.quality: one grouped pass per window and slice, equal to computing each group on its own."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from workbench import metrics as M
from workbench.case.loader import open_case
from workbench.data.quality import QUALITY_COLUMNS, quality_between, quality_series
from workbench.errors import WorkbenchError
from workbench.windows import Window


@pytest.fixture(scope="module")
def case(small_case_template):
    return open_case(small_case_template)


@pytest.fixture(scope="module")
def raw(small_case_template):
    return pl.read_parquet(small_case_template / "predictions.parquet")


def test_hourly_series_has_every_metric_and_matches_each_hour_alone(case, raw):
    series = quality_series(case)
    t = series.table
    assert t.height == 48 and set(QUALITY_COLUMNS) <= set(t.columns) and t["window"].is_sorted()
    for row in t.head(5).iter_rows(named=True):
        hour = raw.filter(pl.col("ts").dt.truncate("1h") == row["window"])
        p, y = hour["prediction"].to_numpy(), hour["label"].to_numpy().astype(float)
        assert row["rows"] == hour.height
        assert row["normalized_entropy"] == pytest.approx(M.normalized_entropy(p, y), rel=1e-9)
        assert abs(row["auc"] - roc_auc_score(y, p)) <= row["auc_bound"] + 1e-12
        assert row["calibration_ratio"] == pytest.approx(p.sum() / y.sum())
        assert row["ece"] == pytest.approx(M.ece(p, y), abs=1e-12)


def test_series_by_slice_and_row_filter(case, raw):
    by = quality_series(case, by="platform").table
    assert set(by["platform"].unique()) == {"ios", "android"} and by.height == 96
    ios = quality_series(case, rows=pl.col("platform") == "ios").table
    joined = ios.join(by.filter(pl.col("platform") == "ios"), on="window", suffix="_by")
    assert joined["normalized_entropy"].to_list() == pytest.approx(joined["normalized_entropy_by"].to_list())
    two = quality_series(case, every="6h", by=("country", "platform")).table
    assert two.height == 8 * 3 * 2 and two["rows"].sum() == raw.height


def test_quality_between_a_window(case, raw):
    w = Window.hours("2026-11-18T06:00:00Z", 12)
    whole = quality_between(case, w)
    sub = raw.filter(pl.col("ts").is_between(w.start, w.end, closed="left"))
    assert whole.height == 1 and whole["rows"][0] == sub.height
    assert whole["log_loss"][0] == pytest.approx(M.log_loss(sub["prediction"].to_numpy(), sub["label"].to_numpy().astype(float)))
    per = quality_between(case, w, by="country")
    assert per["rows"].sum() == sub.height and set(per["country"]) == {"US", "BR", "IN"}


def test_unknown_slice_column_gets_a_spelling_hint(case):
    with pytest.raises(WorkbenchError, match="did you mean 'platform'"):
        quality_series(case, by="platfrom")


def test_label_metrics_use_labeled_rows_only(small_case_template, tmp_path):
    frame = pl.read_parquet(small_case_template / "predictions.parquet")
    frame = frame.with_columns(pl.when(pl.col("ts") >= pl.col("ts").max() - pl.duration(hours=3)).then(None)
                               .otherwise(pl.col("label")).alias("label"))
    (tmp_path / "c").mkdir()
    frame.write_parquet(tmp_path / "c" / "predictions.parquet")
    t = quality_series(open_case(tmp_path / "c")).table
    last = t.tail(3)
    assert last["labeled"].to_list() == [0, 0, 0] and last["label_join_rate"].to_list() == [0, 0, 0]
    assert last["normalized_entropy"].null_count() == 3 and last["prediction_mean"].null_count() == 0


def test_results_are_json_safe_and_print_short(case):
    series = quality_series(case)
    doc = json.loads(json.dumps(series.to_dict()))
    assert doc["table"][0]["window"].endswith("Z") and "quality every 1h" in str(series)
    assert np.isfinite(doc["table"][0]["normalized_entropy"])
