"""An old snapshot pinned back into serving publishes nothing: the log's snapshot column says when it started."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import numpy as np
import polars as pl

from tests.conftest import sample_case
from workbench import Window, diagnose, open_case
from workbench.model.load import feature_matrix, load_model, score

OLD = "ctr-20261101-0300"


def _pinned_back(tmp_path, earlier: tuple[datetime, datetime] | None = None):
    """Sample `control` with an old snapshot (the first one's weights, its first layer halved: a model from before the
    features it leans on) published on 11-01 and pinned back into serving at 11-20 06:00. Every row from then on names
    it and carries its score; the index's refreshes go on being published, and serve nothing. ``earlier``: it also
    served those hours before, and was rolled back."""
    from safetensors.torch import load_file, save_file

    root = shutil.copytree(sample_case("control"), tmp_path / "case")
    index = pl.read_csv(root / "snapshots" / "index.csv")
    first = index.row(0, named=True)
    state = load_file(str(root / "snapshots" / first["file"]))
    layer = sorted(k for k in state if k.endswith("weight"))[0]
    state[layer] = state[layer] * 0.5
    save_file(state, str(root / "snapshots" / f"{OLD}.safetensors"))
    old = pl.DataFrame({"snapshot_id": [OLD], "published_at": ["2026-11-01T03:00:00Z"], "file": [f"{OLD}.safetensors"],
                        "stable": [False]})
    pl.concat([old, index.with_columns(pl.col("stable").cast(pl.Boolean))]).write_csv(root / "snapshots" / "index.csv")
    rows = pl.read_parquet(root / "predictions.parquet")
    pinned = (rows["ts"] >= datetime(2026, 11, 20, 6, tzinfo=UTC)).to_numpy()
    if earlier is not None:
        pinned |= rows["ts"].is_between(*earlier, closed="left").to_numpy()
    case = open_case(root)
    p = rows["prediction"].to_numpy().astype(np.float64)
    p[pinned] = score(load_model(case, OLD), feature_matrix(rows.filter(pl.Series(pinned)), case.features),
                      case.model.output)
    rows.with_columns(pl.Series("prediction", p).cast(rows["prediction"].dtype),
                      pl.when(pl.Series(pinned)).then(pl.lit(OLD)).otherwise(pl.col("snapshot_id"))
                      .cast(rows["snapshot_id"].dtype).alias("snapshot_id")).write_parquet(root / "predictions.parquet")
    return root


def test_a_snapshot_pinned_back_is_named_from_the_log_and_rolled_back_to_what_served_before(tmp_path):
    """The refresh published at 06:09 served none of the incident's rows; before, it was the suspect by its publish
    time, and the old snapshot, published weeks earlier, was never looked at (outside test 3: "no cause"). And the
    rollback looked only at snapshots published before the old one: none."""
    result = diagnose(open_case(_pinned_back(tmp_path)))
    assert result.anomaly["detected"], result.anomaly
    top = result.top
    assert top is not None and top.kind == "snapshot" and top.target == OLD, [c.to_dict() for c in result.root_causes]
    assert "started serving at 2026-11-20 06:0" in top.summary, top.summary
    first = top.mitigations[0]
    assert first.action == "rollback" and first.target != OLD and first.target.startswith("ctr-202611"), first
    assert "started serving at 2026-11-20 06:0" in first.how and "h after it was published" in first.how, first.how
    assert first.predicted is not None and first.predicted.recovery > 0.5, first
    assert not result.errors


def test_a_snapshot_redeployed_after_a_rollback_started_serving_when_it_came_back(tmp_path):
    """The same old snapshot also served three hours of the day before, and was rolled back: it served some of the
    baseline, so "started serving" fell back to its publish time weeks earlier, and no snapshot was near the onset
    (outside test 6, ``i16``: a snapshot re-applied 30 h after its rollback read as a serving-side calibration
    change). What counts is whether it served the baseline's last hours."""
    from workbench.rca.checks.snapshots import started, suspect
    from workbench.rca.context import Context

    case = open_case(_pinned_back(tmp_path, (datetime(2026, 11, 19, 6, tzinfo=UTC), datetime(2026, 11, 19, 9, tzinfo=UTC))))
    windows = Window("2026-11-19T06:00Z", "2026-11-19T18:00Z"), Window("2026-11-20T06:00Z", "2026-11-20T18:00Z")  # same hours
    ctx = Context(case, None, *windows)
    old = case.snapshot(OLD)
    assert datetime(2026, 11, 20, 6, tzinfo=UTC) <= started(ctx, old) < datetime(2026, 11, 20, 6, 10, tzinfo=UTC)
    assert suspect(ctx) == old
    result = diagnose(case, baseline=windows[0], incident=windows[1])
    top = result.top
    assert top is not None and top.kind == "snapshot" and top.target == OLD, [c.to_dict() for c in result.root_causes]
    assert "started serving at 2026-11-20 06:0" in top.summary, top.summary


HOTFIX = "ctr-20261120-0600-hotfix"


def _hotfix_beside(tmp_path):
    """Sample `control` with a hotfix published at 11-20 06:00 (the 00:09 refresh with its input means zeroed, as an
    export that dropped them) serving a quarter of the rows from then on, each row naming it."""
    from safetensors.torch import load_file, save_file

    root = shutil.copytree(sample_case("control"), tmp_path / "hotfix")
    state = load_file(str(root / "snapshots" / "ctr-20261120-0009.safetensors"))
    save_file({**state, "mean": state["mean"] * 0}, str(root / "snapshots" / f"{HOTFIX}.safetensors"))
    index = pl.read_csv(root / "snapshots" / "index.csv").with_columns(pl.col("stable").cast(pl.Boolean))
    hotfix = pl.DataFrame({"snapshot_id": [HOTFIX], "published_at": ["2026-11-20T06:00:00Z"],
                           "file": [f"{HOTFIX}.safetensors"], "stable": [False]})
    pl.concat([index, hotfix]).sort("published_at").write_csv(root / "snapshots" / "index.csv")
    rows = pl.read_parquet(root / "predictions.parquet")
    rng = np.random.default_rng(5)
    hot = (rows["ts"] >= datetime(2026, 11, 20, 6, tzinfo=UTC)).to_numpy() & (rng.random(rows.height) < 0.25)
    case = open_case(root)
    p = rows["prediction"].to_numpy().astype(np.float64)
    p[hot] = score(load_model(case, HOTFIX), feature_matrix(rows.filter(pl.Series(hot)), case.features), case.model.output)
    rows.with_columns(pl.Series("prediction", p).cast(rows["prediction"].dtype),
                      pl.when(pl.Series(hot)).then(pl.lit(HOTFIX)).otherwise(pl.col("snapshot_id"))
                      .cast(rows["snapshot_id"].dtype).alias("snapshot_id")).write_parquet(root / "predictions.parquet")
    return root


def test_with_a_model_a_snapshot_that_started_serving_at_the_onset_is_weighed_though_the_diff_flags_another(tmp_path, monkeypatch):
    """Outside test 6, ``i07``: a broken hotfix served a quarter of the rows from the onset, unflagged (with three
    earlier refreshes the diff's gate is wide), while the next day's refresh, diffed against it, was flagged; only
    flagged snapshots were examined, so the refresh was named. With a model, every snapshot that started serving near
    the onset is weighed too, and the one whose own change hurt the incident's rows most is examined. Here the diff
    is made to flag the 12:10 refresh and not the hotfix, as it did there."""
    import dataclasses

    from workbench.rca.checks import snapshots
    from workbench.rca.context import Context

    case = open_case(_hotfix_beside(tmp_path))
    ctx = Context(case, None, Window("2026-11-19T06:00Z", "2026-11-19T18:00Z"), Window("2026-11-20T06:00Z", "2026-11-20T18:00Z"))
    real = snapshots._timeline(ctx)
    assert real.first_bad == HOTFIX  # with twelve refreshes to learn from, the diff does flag it
    alarm = pl.col("snapshot_id") == "ctr-20261120-1210"
    flagged_later = dataclasses.replace(real, table=real.table.with_columns(alarm.alias("alarm")))
    monkeypatch.setattr(snapshots, "_timeline", lambda ctx: flagged_later)
    assert flagged_later.first_bad == "ctr-20261120-1210"
    assert snapshots.suspect(ctx) == case.snapshot(HOTFIX)
    from workbench.model.mitigate import last_good_snapshot

    good = last_good_snapshot(case, HOTFIX, since=snapshots.started(ctx, case.snapshot(HOTFIX)))
    assert good is not None and good[0] == "ctr-20261120-0009" and "started serving" not in good[1], good
