"""Snapshots served side by side (a canary, an A/B arm): their rows against the rows beside them in the same hours."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tests.data.analysis_data import write_case
from workbench.case.loader import open_case
from workbench.data.served_by import served_side_by_side
from workbench.windows import Window


def _arm(tmp_path, *, worse_from: int | None, arm_from: int = 48, share: float = 0.3, seed: int = 5,
         hand_over: bool = False):
    """A clean 96-hour log whose rows get ``snapshot_id`` ``prod``, and from hour ``arm_from`` a random ``share`` of
    them ``canary``; from hour ``worse_from`` the canary serves predictions shuffled among its own rows (a model that
    lost its ranking). ``hand_over``: instead, every row from hour 48 is the canary's (a refresh, no canary)."""
    path = write_case(tmp_path / "c", seed=seed, hours=96, per_hour=1500)
    frame = pl.read_parquet(path / "predictions.parquet")
    rng = np.random.default_rng(seed)
    hours = ((frame["ts"] - frame["ts"].min()).dt.total_seconds() / 3600).to_numpy()
    arm = (hours >= arm_from) & ((rng.random(frame.height) < share) | hand_over)
    p = frame["prediction"].to_numpy().copy()
    if worse_from is not None:
        bad = arm & (hours >= worse_from)
        p[bad] = rng.permutation(p[bad])
    frame.with_columns(pl.Series("prediction", p), pl.Series("snapshot_id", np.where(arm, "canary", "prod"))) \
        .write_parquet(path / "predictions.parquet")
    (path / "workbench.toml").write_text('[columns]\nsnapshot = "snapshot_id"\nfeatures = ["f_a", "f_b", "f_c"]\n'
                                         'slices = ["country", "device"]\n')
    start = frame["ts"].min()
    return open_case(path), Window(start + np.timedelta64(12, "h"), start + np.timedelta64(48, "h")), \
        Window(start + np.timedelta64(48, "h"), start + np.timedelta64(90, "h"))


def test_a_worse_canary_new_in_the_incident_is_found_and_the_rest_is_not(tmp_path):
    case, baseline, incident = _arm(tmp_path, worse_from=48)
    found = served_side_by_side(case, baseline, incident)
    worse = found.worse
    assert worse is not None and worse["snapshot_id"] == "canary" and worse["new"], str(found)
    assert worse["share"] == pytest.approx(0.3, abs=0.03)
    prod = found.table.filter(pl.col("snapshot_id") == "prod").row(0, named=True)
    assert not (prod["significant"] and prod["material"])
    # the canary's value is its own rows' NE, the same sums as a direct computation on them
    rows = case.predictions.filter(incident.contains("ts") & (pl.col("snapshot_id") == "canary")
                                   & pl.col("label").is_not_null()).collect()
    from workbench.metrics import normalized_entropy

    assert worse["value"] == pytest.approx(normalized_entropy(rows["prediction"].to_numpy(), rows["label"].to_numpy()),
                                           rel=1e-6)
    # routing its traffic back: the whole window's NE moves most of the way back to the baseline's
    base, inc, after, n = found.served_as_beside("canary", "normalized_entropy")
    assert n == rows.height and inc > base and base - 0.01 < after < inc - 0.5 * (inc - base)


def test_an_arm_that_turned_worse_under_the_same_id_is_found_by_its_change(tmp_path):
    case, baseline, incident = _arm(tmp_path, worse_from=48, arm_from=0)
    worse = served_side_by_side(case, baseline, incident).worse
    assert worse is not None and worse["snapshot_id"] == "canary" and not worse["new"]
    assert abs(worse["baseline_excess"]) < 0.03  # as good as the rows beside it before


def test_an_arm_that_was_always_worse_is_no_cause(tmp_path):
    # the canary serves shuffled predictions from hour 0: worse than prod in both windows by the same amount
    case, baseline, incident = _arm(tmp_path, worse_from=0, arm_from=0)
    found = served_side_by_side(case, baseline, incident)
    canary = found.table.filter(pl.col("snapshot_id") == "canary").row(0, named=True)
    assert canary["baseline_excess"] > 0.1 and found.worse is None, str(found)


def test_a_refresh_that_hands_over_is_not_compared(tmp_path):
    case, baseline, incident = _arm(tmp_path, worse_from=48, hand_over=True)
    found = served_side_by_side(case, baseline, incident)
    assert found.table.is_empty() and found.worse is None


def test_the_diagnosis_names_the_canary_and_routes_its_traffic_back(tmp_path):
    from workbench import diagnose

    case, _, _ = _arm(tmp_path, worse_from=48)
    found = diagnose(case.root)
    top = found.root_causes[0]
    assert (top.kind, top.target) == ("snapshot", "canary"), found.root_causes
    assert all(c.kind != "label" for c in found.root_causes), found.root_causes
    first = top.mitigations[0]
    assert (first.action, first.target) == ("rollback", "prod") and first.recovery is not None and first.recovery > 0.5
    assert not found.errors
    assert found.to_dict()["root_causes"][0]["mitigations"][0]["predicted"]["recovery"] > 0.5


def test_without_a_snapshot_column_the_check_is_skipped_with_the_reason(tmp_path):
    from workbench import diagnose

    path = write_case(tmp_path / "c", seed=3, onset=50)
    found = diagnose(path)
    assert {"check": "served_beside", "reason": "no snapshot column in the serving log ([columns] snapshot)"} in \
        found.to_dict()["skipped"]


def test_sums_of_the_rows_beside_are_reweighted_hour_by_hour(tmp_path):
    # the canary's share swings with the hour of day; the others' sums are scaled to its rows hour by hour, so with an
    # unchanged model its NE and the reweighted others' agree within sampling error
    case, baseline, incident = _arm(tmp_path, worse_from=None)
    found = served_side_by_side(case, baseline, incident)
    canary = found.table.filter(pl.col("snapshot_id") == "canary").row(0, named=True)
    assert abs(canary["value"] - canary["beside"]) < 0.03 and found.worse is None
    sums = found.sums.filter(pl.col("snapshot_id") == "canary")
    assert float(sums["labeled_o"][0]) == pytest.approx(float(sums["labeled"][0]), rel=1e-9)


def test_on_a_dask_cluster_the_comparison_is_the_in_process_one(tmp_path, dask_client):
    from tests.data.test_scan import split_case
    from workbench.data import _dask

    case, baseline, incident = _arm(tmp_path, worse_from=48)
    case = open_case(split_case(case.root, tmp_path / "split", row_group=20_000))  # a folder per day: one task a part

    assert len(_dask.parts(case)) > 3
    here = served_side_by_side(case, baseline, incident)
    there = served_side_by_side(case, baseline, incident, scheduler=dask_client)
    assert there.worse is not None and there.worse["snapshot_id"] == here.worse["snapshot_id"] == "canary"
    cols = ["share", "value", "beside", "z"]
    a, b = here.table.sort("snapshot_id"), there.table.sort("snapshot_id")
    assert a["snapshot_id"].to_list() == b["snapshot_id"].to_list()
    for c in cols:
        assert np.allclose(a[c].to_numpy(), b[c].to_numpy(), rtol=1e-9), c
