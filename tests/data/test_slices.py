"""workbench.data.slices: per-slice deltas agree with the quality pass; the search finds where the change concentrates."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from tests.conftest import dev_case, sample_case
from tests.data.analysis_data import write_case
from workbench.case.loader import open_case
from workbench.data.onset import detect_onset
from workbench.data.quality import quality_between
from workbench.data.slices import find_slices, slice_deltas
from workbench.errors import WorkbenchError
from workbench.windows import Window


def _windows(case):
    onset = detect_onset(case)
    return onset.baseline, onset.incident


@pytest.mark.parametrize("name", ["slice_shift", "feature_slice_break"])
def test_slice_confined_sample_cases_find_their_slice_first(name):
    path = sample_case(name)
    truth = json.loads((path / "truth.json").read_text())
    expected = truth.get("slice") or truth["target"]
    case = open_case(path)
    search = find_slices(case, *_windows(case))
    assert search.top is not None and search.top["slice"] == expected, str(search)
    # confined means a minority of the traffic whose regression the rest does not share
    assert search.confined == (search.top["share"] < 0.5), str(search)


@pytest.mark.parametrize("name", ["control", "calibration_shift", "label_drift", "snapshot_bad_data"])
def test_global_or_absent_changes_are_not_confined(name):
    case = open_case(sample_case(name))
    search = find_slices(case, *_windows(case))
    assert not search.confined, str(search)


def test_slice_deltas_agree_with_quality_between(small_case_template):
    case = open_case(small_case_template)
    b, i = Window.hours("2026-11-18T00:00:00Z", 24), Window.hours("2026-11-19T00:00:00Z", 24)
    deltas = slice_deltas(case, b, i).table
    direct = quality_between(case, i, by="country")
    for row in direct.iter_rows(named=True):
        got = deltas.filter(deltas["slice"] == f"country={row['country']}").row(0, named=True)
        assert got["normalized_entropy_incident"] == pytest.approx(row["normalized_entropy"], rel=1e-9)
        assert got["calibration_ratio_incident"] == pytest.approx(row["calibration_ratio"], rel=1e-9)
        assert got["rows_incident"] == row["rows"]
    assert set(deltas["level"]) == {1, 2}
    level1 = deltas.filter(deltas["columns"] == "country")
    assert level1["share_incident"].sum() == pytest.approx(1.0)
    assert "country=US & platform=ios" in deltas["slice"].to_list()


def test_search_finds_a_small_injected_slice_and_not_noise(tmp_path):
    case = open_case(write_case(tmp_path / "c", seed=11, onset=50, slice_=("country", "KR")))
    onset = detect_onset(case)
    search = find_slices(case, onset.baseline, onset.incident)
    assert search.top["slice"] == "country=KR" and search.confined, str(search)
    sig = search.table.filter(search.table["significant"])
    # a level-2 child of KR may also be significant, but nothing outside KR
    assert all("country=KR" in s for s in sig["slice"]), str(search)


def test_a_column_of_rare_values_is_searched_without_dividing_by_zero(tmp_path):
    """A slice column with thousands of values, a dozen rows each: their errors are 0 and the untested slices' z-scores
    divided by them, or their click-less label rates read log 0 on both sides (numpy warnings on stderr of every guard
    run); the search still finds the slice."""
    import warnings

    root = write_case(tmp_path / "c", seed=11, onset=50, slice_=("country", "KR"))
    path = root / "predictions.parquet"
    frame = pl.read_parquet(path)
    rare = np.random.default_rng(0).integers(0, 5000, frame.height)
    frame.with_columns(pl.Series("device", [f"d{i}" for i in rare])).write_parquet(path)
    case = open_case(root)
    onset = detect_onset(case)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        found = {m: find_slices(case, onset.baseline, onset.incident, metric=m, columns=["country", "device"])
                 for m in ("normalized_entropy", "calibration_ratio", "label_rate", "prediction_mean")}
    assert found["normalized_entropy"].top["slice"] == "country=KR", str(found["normalized_entropy"])


def test_global_regression_has_no_confined_slice(tmp_path):
    case = open_case(write_case(tmp_path / "c", seed=12, onset=50))
    onset = detect_onset(case)
    search = find_slices(case, onset.baseline, onset.incident)
    assert onset.detected and not search.confined
    assert search.total_delta > 0


def test_pair_slice_beats_its_parents_when_it_holds_the_regression(tmp_path):
    # only MX phones regress: the pair explains as much as 'country=MX' and is more specific
    frame = pl.read_parquet(write_case(tmp_path / "c", seed=13, onset=50, slice_=("country", "MX"), per_hour=1500)
                            / "predictions.parquet")
    clean = write_case(tmp_path / "clean", seed=13, per_hour=1500)
    base = pl.read_parquet(clean / "predictions.parquet")
    # keep the regression for MX phones only: other MX rows come from the clean log
    mixed = pl.concat([frame.filter((pl.col("country") == "MX") & (pl.col("device") == "phone")),
                       base.filter(~((pl.col("country") == "MX") & (pl.col("device") == "phone")))]).sort("ts")
    (tmp_path / "mixed").mkdir()
    mixed.write_parquet(tmp_path / "mixed" / "predictions.parquet")
    case = open_case(tmp_path / "mixed")
    onset = detect_onset(case)
    search = find_slices(case, onset.baseline, onset.incident)
    assert search.top["slice"] in ("country=MX & device=phone", "device=phone & country=MX"), str(search)


def test_json_text_and_errors(small_case_template):
    case = open_case(small_case_template)
    b, i = Window.hours("2026-11-18T00:00:00Z", 24), Window.hours("2026-11-19T00:00:00Z", 24)
    search = find_slices(case, b, i, metric="calibration_ratio", max_level=1)
    doc = json.loads(json.dumps(search.to_dict()))
    assert doc["metric"] == "calibration_ratio" and all(r["slice"].count("=") == 1 for r in doc["table"])
    assert np.isfinite(search.total_delta) and "slice search" in str(search)
    assert "slice deltas" in str(slice_deltas(case, b, i, columns=["country"], pairs=False))
    with pytest.raises(WorkbenchError, match="use one of"):
        find_slices(case, b, i, metric="accuracy")
    with pytest.raises(WorkbenchError, match="did you mean 'country'"):
        slice_deltas(case, b, i, columns=["contry"])


def test_a_segment_whose_clicks_collapsed_is_found_and_not_the_majority_beside_it(tmp_path):
    # 40% of tablet clicks (15% of the traffic) logged as non-clicks from hour 50: the calibration ratio regresses in
    # tablets only. The ratio regresses either way, so the search orients it by the way the whole traffic moved: by
    # |difference| the phones (60%, unchanged) differed as much from a rest that holds the tablets, and won
    case = open_case(write_case(tmp_path / "c", seed=14, onset=50, break_="labels", slice_=("device", "tablet"),
                                per_hour=1500))
    base, inc = Window.hours("2026-03-03T02:00:00Z", 24), Window.hours("2026-03-04T02:00:00Z", 16)  # hours 26-50, 50-66
    search = find_slices(case, base, inc, metric="calibration_ratio", max_level=1)
    assert search.top["slice"] == "device=tablet" and search.confined, str(search)
    assert search.total_delta > 0  # fewer clicks: sum p / sum y went up
    phones = search.table.filter(pl.col("slice") == "device=phone")
    assert phones.is_empty() or phones["score"][0] < 0, str(search)  # the unchanged majority explains none of it


def test_a_small_segment_whose_clicks_vanished_is_tested_and_named_in_the_fewest_terms(tmp_path):
    # NG (10% of the traffic) keeps 2 of its ~25 expected clicks in the incident: observed positives are below the
    # support (5), the expected ones are not, so NG is tested, and its calibration error is the one under no change
    # (1/sqrt(25), not 1/sqrt(2)). 97% of rows are on phones, so 'country=NG & device=phone' holds nearly all of NG's
    # rows: the same segment in more words, and NG (the smaller description) ranks first
    frame = pl.read_parquet(write_case(tmp_path / "c", seed=25, per_hour=250) / "predictions.parquet")
    rng = np.random.default_rng(0)
    frame = frame.with_columns(device=pl.Series(np.where(rng.random(frame.height) < 0.97, "phone", "tablet")))
    inc = Window.hours("2026-03-04T02:00:00Z", 16)
    hit = (pl.col("country") == "NG") & (pl.col("ts") >= inc.start) & (pl.col("ts") < inc.end) & (pl.col("label") == 1)
    frame = frame.with_columns(pl.when(hit & (hit.cum_sum() > 2)).then(0).otherwise(pl.col("label")).alias("label"))
    (tmp_path / "m").mkdir()
    frame.write_parquet(tmp_path / "m" / "predictions.parquet")
    case = open_case(tmp_path / "m")
    ng = frame.filter((pl.col("country") == "NG") & (pl.col("ts") >= inc.start) & (pl.col("ts") < inc.end))
    assert ng["label"].sum() == 2 and ng["prediction"].sum() > 15  # below the support observed, above it expected
    search = find_slices(case, Window.hours("2026-03-03T02:00:00Z", 24), inc, metric="calibration_ratio")
    assert search.top["slice"] == "country=NG" and search.confined, str(search)
    assert search.top["z"] > 5, str(search)


def test_slice_filter_selects_the_rows_of_one_and_two_column_slices():
    from workbench.data.slices import slice_filter

    frame = pl.DataFrame({"country": ["BR", "BR", "US", None], "platform": ["ios", "web", "ios", "ios"], "n": [1, 2, 3, 4]})
    assert frame.filter(slice_filter("country=BR"))["n"].to_list() == [1, 2]
    assert frame.filter(slice_filter("country=BR & platform=ios"))["n"].to_list() == [1]
    assert frame.filter(slice_filter("platform = ios"))["n"].to_list() == [1, 3, 4]


def test_a_segment_whose_rest_moved_only_immaterially_is_confined(tmp_path):
    """Proving ground dev slice/collapse, seed 3: clicks collapse in one country (13% of the traffic, 77% of the
    regression). The rest of the traffic moves by a significant but immaterial amount on 500k rows; the segment is
    confined, and the diagnosis names it rather than the labels."""
    from workbench import diagnose

    path, truth = dev_case(tmp_path, "slice", "collapse", 3)
    found = diagnose(path)
    search = found.results["find_slices"]
    assert search.top["slice"] == truth["slice"] and search.confined
    top = found.root_causes[0]
    assert (top.kind, top.target) == ("slice", truth["slice"])


def test_a_segment_new_in_the_incident_is_compared_with_the_traffic_it_joined(tmp_path):
    # from hour 120, 30% of the traffic goes to a new arm that serves the predictions of other rows (a worse model).
    # The arm has no baseline rows, so it used to be left out of the search (no support); against the rest of the
    # traffic it joined, it holds the regression
    path = write_case(tmp_path / "c", seed=9, hours=240, per_hour=600)
    frame = pl.read_parquet(path / "predictions.parquet")
    rng = np.random.default_rng(9)
    after = (frame["ts"] >= frame["ts"].min() + np.timedelta64(120, "h")).to_numpy()
    arm = after & (rng.random(frame.height) < 0.3)
    p = frame["prediction"].to_numpy().copy()
    p[arm] = rng.permutation(p[arm])
    frame.with_columns(pl.Series("prediction", p), pl.Series("arm", np.where(arm, "treatment", "control"))) \
        .write_parquet(path / "predictions.parquet")
    (path / "workbench.toml").write_text('[columns]\nslices = ["arm", "country"]\n')
    case = open_case(path)
    start = frame["ts"].min()
    baseline = Window(start + np.timedelta64(48, "h"), start + np.timedelta64(120, "h"))
    incident = Window(start + np.timedelta64(120, "h"), start + np.timedelta64(192, "h"))
    search = find_slices(case, baseline, incident)
    top = search.top
    assert top is not None and top["slice"] == "arm=treatment" and top["new"] and top["significant"], str(search)
    assert search.confined
    # the rest's own z keeps its baseline error (the new slice's difference drops it, the rest's change does not)
    from workbench.data._frames import PERIOD
    from workbench.data._sums import SUMS
    from workbench.data.slices import slice_cells
    from workbench.metrics import metric_from_sums

    cells = slice_cells(case, baseline, incident, ("arm",)).filter(pl.col("arm") == "control")
    rest = {w: metric_from_sums({s: np.array([float(cells.filter(pl.col(PERIOD) == w)[s].sum())]) for s in SUMS},
                                "normalized_entropy") for w in ("baseline", "incident")}
    (vb, sb), (vi, si) = rest["baseline"], rest["incident"]
    assert search.rest_z == pytest.approx(float((vi - vb)[0] / np.hypot(sb, si)[0]), rel=1e-6)
    rest = quality_between(case, baseline, by="arm").filter(pl.col("arm") == "control")  # the baseline is all control
    assert top["baseline_value"] == pytest.approx(rest["normalized_entropy"][0], rel=1e-6)
    old = find_slices(case, incident, incident)  # in windows where the arm is not new, it is read as before
    assert not old.table.filter(pl.col("slice") == "arm=treatment")["new"].any()


def _moved_apart(tmp_path, up: str, down: str | None, seed: int = 21):
    """A clean log whose served logits move +0.6 in segment ``up`` and -0.6 in ``down`` from hour 48 on: a change
    made per segment, or rows mixed up between two (their calibration moves apart, the whole traffic's holds)."""
    path = write_case(tmp_path / "c", seed=seed, hours=96, per_hour=1500)
    frame = pl.read_parquet(path / "predictions.parquet")
    after = frame["ts"] >= frame["ts"].min() + np.timedelta64(48, "h")
    shift = pl.when(after & (pl.col("country") == up)).then(0.6).when(after & (pl.col("country") == (down or ""))).then(-0.6) \
        .otherwise(0.0)
    logit = (pl.col("prediction") / (1 - pl.col("prediction"))).log() + shift
    frame.with_columns((1 / (1 + (-logit).exp())).alias("prediction")).write_parquet(path / "predictions.parquet")
    start = frame["ts"].min()
    return open_case(path), Window(start + np.timedelta64(12, "h"), start + np.timedelta64(48, "h")), \
        Window(start + np.timedelta64(48, "h"), start + np.timedelta64(96, "h"))


def test_two_segments_whose_calibration_moved_apart_are_both_named(tmp_path):
    case, baseline, incident = _moved_apart(tmp_path, "MX", "PL")
    search = find_slices(case, baseline, incident, metric="calibration_ratio")
    assert search.top is not None and search.counter is not None, str(search)
    assert {search.top["slice"], search.counter["slice"]} == {"country=MX", "country=PL"}, str(search)
    # each moved on its own: against its own baseline, the other way from the top slice
    assert (search.top["incident_value"] - search.top["baseline_value"]) * \
        (search.counter["incident_value"] - search.counter["baseline_value"]) < 0
    assert not search.confined  # the rest (which holds the other segment) moved too
    from workbench import diagnose

    found = diagnose(case.root)
    causes = [(c.kind, c.target) for c in found.root_causes[:2]]
    assert sorted(causes) == [("slice", "country=MX"), ("slice", "country=PL")], found.root_causes
    assert "opposite directions" in found.next_steps()[0]
    # the second segment's recalibration is simulated on its own rows, not on the first one's (none of them)
    second = found.root_causes[1]
    assert second.mitigations[0].action == "recalibrate" and second.mitigations[0].predicted is not None


def test_one_segment_whose_calibration_moved_has_no_counter(tmp_path):
    case, baseline, incident = _moved_apart(tmp_path, "MX", None)
    search = find_slices(case, baseline, incident, metric="calibration_ratio")
    assert search.top is not None and search.top["slice"] == "country=MX" and search.confined, str(search)
    assert search.counter is None, str(search)
