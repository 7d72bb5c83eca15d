"""The label check: labels that changed on their own, not a population that moved them through the inputs."""

from __future__ import annotations

from tests.conftest import dev_case


def test_predictions_that_moved_materially_with_the_labels_speak_for_a_population_shift(tmp_path):
    """Proving ground dev shift/boolean_share, seed 3: a boolean's share moved, labels +34%, the served predictions
    +13% (39% of the label change; a label model on the inputs predicts 55% of it). A logging bug would have left the
    predictions where they were, so the label cause yields to the shifted feature."""
    from workbench import diagnose, open_case

    path, truth = dev_case(tmp_path, "shift", "boolean_share", 3)
    found = diagnose(open_case(path))
    label = found.evidence("label_side")
    assert "following 39% of the label change" in label.summary and label.score < 0.2
    top = found.root_causes[0]
    assert (top.kind, top.target, top.change) == ("feature", truth["target"], "shift")


def _balanced_case(root, seed: int, loose: bool):
    """Ten days of 600 rows an hour, six inputs of equal weight and a calibrated model; with ``loose``, half the labels
    of the last three days are joined to other rows of those days (a label join on the wrong key)."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    n = 240 * 600
    ts = np.sort(rng.uniform(0, 240 * 3600, n))
    x = rng.standard_normal((n, 6))
    p = 1 / (1 + np.exp(-(-1.3 + 0.5 * x.sum(axis=1))))
    y = (rng.random(n) < p).astype(np.int8)
    if loose:
        moved = np.flatnonzero((ts >= 168 * 3600) & (rng.random(n) < 0.5))
        y[moved] = y[rng.permutation(moved)]
    start = np.datetime64("2026-03-01T00:00:00", "us")
    frame = pl.DataFrame({"ts": start + (ts * 1e6).astype("timedelta64[us]"), "prediction": p, "label": y,
                          **{f"f_{j}": x[:, j] for j in range(6)}}).with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
    root.mkdir(parents=True)
    frame.write_parquet(root / "predictions.parquet")
    return root


def test_labels_that_came_loose_from_their_rows_are_named(tmp_path):
    """Half the incident's labels joined to other rows (a label join on the wrong key): the label rate, the inputs,
    the predictions all stay, the ranking collapses. The labels are named, as having come loose (no cause was)."""
    from workbench import diagnose

    found = diagnose(_balanced_case(tmp_path / "c", 12, loose=True))
    assert found.anomaly["detected"] and found.anomaly["onset"].startswith("2026-03-08")
    top = found.top
    assert top is not None and (top.kind, top.target) == ("label", "label") and "came loose" in top.summary, str(found)


def test_a_ranking_lost_through_a_broken_input_is_not_loose_labels(tmp_path):
    from tests.data.analysis_data import write_case
    from workbench import diagnose

    found = diagnose(write_case(tmp_path / "c", seed=13, hours=168, per_hour=800, onset=120, break_="stale"))
    assert (found.top.kind, found.top.target) == ("feature", "f_a")
    assert all(c.kind != "label" for c in found.root_causes)


def test_a_weak_loose_labels_reading_is_not_stated(tmp_path):
    """Dev feature/stale_block/23: a block served as one value lost the ranking (AUC 0.72 -> 0.51); the input explains
    it, and what is left for the labels (0.12 once weakened) named them a second cause. A reading under the warn
    level is not stated."""
    from tests.conftest import dev_case
    from workbench import diagnose

    path, truth = dev_case(tmp_path, "feature", "stale_block", 23)
    found = diagnose(path)
    assert found.top.target == truth["target"]
    assert all(c.kind != "label" for c in found.root_causes)
    assert "came loose" not in found.evidence("label_side").summary


def test_every_click_lost_over_the_whole_traffic_is_a_label_incident(tmp_path):
    """Sample control with every label 0 from 11-20 06:00 (a click logger that stopped): the scan found the shift, but
    a window without clicks had no calibration ratio, its materiality read False and the answer was "no regression";
    the label check's change was undefined too, so it passed. A window now counts at least half a click, and the
    labels are named."""
    import math
    import shutil
    from datetime import UTC, datetime

    import polars as pl

    from tests.conftest import sample_case
    from workbench import diagnose, open_case

    root = shutil.copytree(sample_case("control"), tmp_path / "case")
    log = root / "predictions.parquet"
    rows = pl.read_parquet(log)
    stopped = (pl.col("ts") >= datetime(2026, 11, 20, 6, tzinfo=UTC)) & pl.col("label").is_not_null()
    rows.with_columns(pl.when(stopped).then(0).otherwise(pl.col("label")).cast(rows["label"].dtype).alias("label")
                      ).write_parquet(log)
    result = diagnose(open_case(root))
    anomaly = result.anomaly
    assert anomaly["detected"] and anomaly["metric"] == "calibration_ratio" and anomaly["onset"] == "2026-11-20T06:00:00Z"
    assert result.top is not None and result.top.kind == "label", [c.to_dict() for c in result.root_causes]
    assert not result.errors
    # the snapshot swap has no regression to measure on rows without clicks: said in words, not as "nan%"
    model_side = result.evidence("model_side")
    assert model_side is not None and math.isfinite(model_side.score) and "nan" not in model_side.summary


def test_predictions_that_all_fell_to_zero_are_not_labels_that_came_loose(tmp_path):
    """Sample control with every served prediction 0 from 11-20 06:00 (a serving path that returns 0): the AUC fell to
    0.5 and the prediction mean's change was undefined (log 0), so nothing said the predictions had moved, and the
    answer was "labels came loose from their rows ... with the predictions unchanged" at 0.99. The prediction mean now
    counts half a click's worth, as a window's calibration ratio does, and the labels are not blamed. The case has its
    model, and the serving consistency dropped every row whose logged logit was saturated, so nothing was left to
    compare and no cause was named: each side now reads at most 15 logits, and the served predictions are named as
    no longer what the snapshot computes from the logged inputs."""
    import shutil
    from datetime import UTC, datetime

    import polars as pl

    from tests.conftest import sample_case
    from workbench import diagnose, open_case

    root = shutil.copytree(sample_case("control"), tmp_path / "case")
    log = root / "predictions.parquet"
    rows = pl.read_parquet(log)
    broken = pl.col("ts") >= datetime(2026, 11, 20, 6, tzinfo=UTC)
    rows.with_columns(pl.when(broken).then(0.0).otherwise(pl.col("prediction")).cast(rows["prediction"].dtype)
                      .alias("prediction")).write_parquet(log)
    result = diagnose(open_case(root))
    assert result.anomaly["detected"] and result.anomaly["onset"] == "2026-11-20T06:00:00Z"
    assert not any(c.kind == "label" for c in result.root_causes), [c.to_dict() for c in result.root_causes]
    label_side = result.evidence("label_side")
    assert label_side.verdict == "pass" and "nan" not in label_side.summary, label_side.summary
    assert result.top is not None and result.top.kind == "calibration" and result.top.confidence >= 0.9, result.top
    assert "stopped matching what the serving snapshot computes" in result.top.summary, result.top.summary
    assert not result.errors


def test_a_constant_fallback_on_part_of_the_traffic_is_a_serving_path_not_labels(tmp_path):
    """Sample control with 30 % of the rows from 11-20 06:00 served a constant (the mean prediction: a fallback the
    serving stack used when a call timed out). The median row still matched the model, so the serving check saw
    nothing, and an outside test's case of the kind named no cause, or labels that came loose. The share of rows off
    the model's output, beyond the baseline's 99th percentile gap, names the serving path."""
    import shutil
    from datetime import UTC, datetime

    import numpy as np
    import polars as pl

    from tests.conftest import sample_case
    from workbench import diagnose, open_case

    root = shutil.copytree(sample_case("control"), tmp_path / "case")
    log = root / "predictions.parquet"
    rows = pl.read_parquet(log)
    fallback = (rows["ts"] >= datetime(2026, 11, 20, 6, tzinfo=UTC)).to_numpy() & (
        np.random.default_rng(0).random(rows.height) < 0.3)
    constant = float(rows["prediction"].mean())
    rows.with_columns(pl.when(pl.Series(fallback)).then(constant).otherwise(pl.col("prediction"))
                      .cast(rows["prediction"].dtype).alias("prediction")).write_parquet(log)
    result = diagnose(open_case(root))
    assert result.anomaly["detected"], result.anomaly
    assert result.top is not None and result.top.kind == "calibration", [c.to_dict() for c in result.root_causes]
    assert "of the rows" in result.top.summary and "stopped matching" in result.top.summary, result.top.summary
    assert not any(c.kind == "label" for c in result.root_causes[:1])
    assert not result.errors
