"""``workbench guard``: exit codes, the JSON verdict (contract v2), the monitors on known incidents, ``[guard]`` thresholds."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from datetime import UTC, datetime

import jsonschema
import pytest

from tests.conftest import sample_case
from workbench import CaseError, Window, open_case
from workbench.case.config import GuardConfig
from workbench.cli import main
from workbench.errors import WorkbenchError
from workbench.guardrails import guard

# The contract (v2) of `workbench guard CASE --json`, as a JSON schema.
GUARD = {
    "type": "object", "additionalProperties": False, "required": ["case", "window", "tripped", "monitors"],
    "properties": {
        "case": {"type": "string"},
        "window": {"type": "object", "required": ["from", "to"], "additionalProperties": False,
                   "properties": {"from": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"},
                                  "to": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"}}},
        "tripped": {"type": "boolean"},
        "monitors": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False,
            "required": ["monitor", "target", "status", "value", "threshold", "detail"],
            "properties": {"monitor": {"enum": ["feature_coverage", "feature_scale", "feature_drift", "label_drift", "calibration",
                                                "quality", "snapshot_gate"]},
                           "target": {"type": "string"}, "status": {"enum": ["trip", "pass", "skip"]},
                           "value": {"type": ["number", "null"]}, "threshold": {"type": ["number", "null"]},
                           "detail": {"type": "string"}}}},
    },
}
INCIDENT_DAY = "2026-11-20T00:00Z/2026-11-21T00:00Z"


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["guard", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_an_incident_in_the_window_trips_exit_1_with_the_json_verdict(capsys):
    code, out, _ = _run(capsys, str(sample_case("feature_scale_bug")), "--window", INCIDENT_DAY, "--json", "-q")
    assert code == 1
    verdict = json.loads(out)  # stdout holds the JSON and nothing else
    jsonschema.validate(verdict, GUARD)
    assert verdict["tripped"] and verdict["window"] == {"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"}
    trips = {(m["monitor"], m["target"]) for m in verdict["monitors"] if m["status"] == "trip"}
    assert ("feature_scale", "f_user_ctr_30d") in trips and ("quality", "normalized_entropy") in trips
    scale = next(m for m in verdict["monitors"] if (m["monitor"], m["target"]) == ("feature_scale", "f_user_ctr_30d"))
    assert scale["value"] < 1 / scale["threshold"]  # divided by 100: beyond the allowed factor


def test_a_healthy_newest_window_passes_exit_0_and_says_so(capsys):
    code, out, _ = _run(capsys, str(sample_case("control")), "-q")  # --window latest: the last day
    assert code == 0
    assert "verdict: pass" in out and "window 2026-11-20 00:00–2026-11-21 00:00 UTC" in out
    code, out, _ = _run(capsys, str(sample_case("control")), "--json", "-q")
    verdict = json.loads(out)
    jsonschema.validate(verdict, GUARD)
    assert code == 0 and not verdict["tripped"]
    assert {m["monitor"] for m in verdict["monitors"]} == {"feature_coverage", "feature_scale", "feature_drift", "label_drift",
                                                           "calibration", "quality", "snapshot_gate"}
    gate = next(m for m in verdict["monitors"] if m["monitor"] == "snapshot_gate")
    assert gate["status"] == "pass" and gate["target"] == "ctr-20261120-1810"  # the newest snapshot


def test_a_feature_never_logged_is_skipped_with_its_reason_not_a_crash(capsys, tmp_path):
    """A feature null in every row: the unexplained-shift monitor's surrogate crashed in sklearn's binning ("window shape
    cannot be larger than input array shape"), and the guard with it."""
    import polars as pl

    case_dir = tmp_path / "never_logged"
    shutil.copytree(sample_case("control"), case_dir)
    log = pl.read_parquet(case_dir / "predictions.parquet")
    log.with_columns(pl.lit(None, pl.Float32).alias("f_ctr_7d")).write_parquet(case_dir / "predictions.parquet")
    code, out, err = _run(capsys, str(case_dir), "--json", "-q")
    verdict = json.loads(out)
    jsonschema.validate(verdict, GUARD)
    assert code == 0 and not verdict["tripped"] and "Traceback" not in err
    skipped = {(m["monitor"], m["target"]) for m in verdict["monitors"] if m["status"] == "skip"}
    assert ("feature_coverage", "f_ctr_7d") in skipped


def test_an_unreadable_case_or_window_exits_2_with_a_message(capsys, tmp_path):
    code, out, err = _run(capsys, str(tmp_path), "--json")
    assert code == 2 and out == "" and "predictions.parquet" in err
    code, out, err = _run(capsys, str(sample_case("control")), "--window", "yesterday")
    assert code == 2 and out == "" and "Hint: e.g. --window 2026-11-20T00:00/2026-11-21T00:00" in err
    code, out, err = _run(capsys, str(sample_case("control")), "--window", "2026-11-22T00:00/2026-11-23T00:00", "--json")
    assert code == 2 and out == "" and "holds no served row (outside the log): the log runs 2026-11-18 00:00 to 2026-11-21 00:00 UTC" in err
    code, out, err = _run(capsys, str(sample_case("control")), "--window", "2026-11-18T00:00/2026-11-18T06:00")
    assert code == 2 and "no data before the window" in err and "[guard] window" not in err, err  # a given window
    short = open_case(sample_case("control"))
    with pytest.raises(WorkbenchError, match=r"or a shorter \[guard\] window \(now 1w\)"):
        guard(short, thresholds=dataclasses.replace(short.config.guard, window="1w"))  # the default window: 3 days < 2 weeks


def test_labels_that_moved_trip_the_label_monitor_only_on_the_label_side():
    case = open_case(sample_case("label_drift"))  # 48% of clicks logged as non-clicks from 06:00
    report = guard(case, Window("2026-11-20T00:00Z", "2026-11-21T00:00Z"),
                   thresholds=dataclasses.replace(case.config.guard, snapshot_gate=False))
    trips = {m.monitor for m in report.trips}
    assert "label_drift" in trips and not trips & {"feature_coverage", "feature_scale", "feature_drift"}
    assert next(m for m in report.monitors if m.monitor == "snapshot_gate").status == "skip"


def test_guard_thresholds_come_from_workbench_toml_with_spelling_hints(tmp_path):
    case_dir = tmp_path / "case"
    shutil.copytree(sample_case("control"), case_dir)
    toml = case_dir / "workbench.toml"
    base = toml.read_text()
    toml.write_text(base + "\n[guard]\nne_rise = 0.05\nsnapshot_gate = false\nwindow = \"6h\"\n")
    case = open_case(case_dir)
    assert case.config.guard == GuardConfig(ne_rise=0.05, snapshot_gate=False, window="6h")
    report = guard(case)
    assert report.window.duration.total_seconds() == 6 * 3600 and not report.tripped
    toml.write_text(base + "\n[guard]\nne_rize = 0.05\n")
    with pytest.raises(CaseError, match="Hint: did you mean 'ne_rise'"):
        open_case(case_dir)
    toml.write_text(base + "\n[guard]\ncoverage_drop = 2\n")
    with pytest.raises(CaseError, match=r"coverage_drop must be a number above 0 and at most 1.*\nHint: write coverage_drop = 0.1"):
        open_case(case_dir)
    for odd in ("nan", "inf"):  # TOML numbers that compare false with every bound
        toml.write_text(base + f"\n[guard]\nne_rise = {odd}\n")
        with pytest.raises(CaseError, match=rf"ne_rise must be a number above 0, found {odd}"):
            open_case(case_dir)
    toml.write_text(base + "\n[guard]\nwindow = \"1day\"\n")
    with pytest.raises(CaseError, match="Hint: write window = \"1d\""):
        open_case(case_dir)


def test_a_regression_that_starts_late_in_the_window_trips_through_the_scan_and_the_late_quarter(monkeypatch):
    """feature_scale_bug breaks at 02:00: a window ending 05:00 holds 3 bad hours of 24, which the whole-window
    comparisons dilute below their thresholds (the scaled feature's drift severity 0.16 < 0.25). The detector's scan
    over the log up to 05:00 finds the 02:00 onset; and the window's last 6 hours, against the same hours the day
    before, hold the break for half their rows: the feature's drift trips there (0.37)."""
    from workbench.guardrails import monitors

    case = open_case(sample_case("feature_scale_bug"))
    window = Window("2026-11-19T05:00Z", "2026-11-20T05:00Z")
    report = monitors.guard(case, window)
    scanned = [m for m in report.monitors if m.status == "trip" and "change-point scan" in m.detail]
    assert report.tripped and scanned and "2026-11-20 02:00" in scanned[0].detail
    assert monitors._change_points(case, Window("2026-11-18T00:00Z", "2026-11-19T00:00Z"),
                                   Window("2026-11-19T00:00Z", "2026-11-20T00:00Z")) == {}  # before the break
    monkeypatch.setattr(monitors, "_change_points", lambda case, baseline, window: {})
    late = monitors.guard(case, window)
    assert [(m.monitor, m.target) for m in late.trips] == [("feature_drift", "f_user_ctr_30d")]
    assert "last 6 h against the same hours before" in late.trips[0].detail
    monkeypatch.setattr(monitors, "_late_part", lambda case, baseline, window: None)
    assert not monitors.guard(case, window).tripped  # the scan and the late quarter are what trip it


def test_the_late_quarter_is_compared_with_the_same_hours_before():
    from workbench.guardrails import monitors

    case = open_case(sample_case("feature_scale_bug"))
    window = Window("2026-11-19T05:00Z", "2026-11-20T05:00Z")
    before, late = monitors._late_part(case, Window("2026-11-18T05:00Z", "2026-11-19T05:00Z"), window)
    assert (late.start, late.end) == (Window("2026-11-19T23:00Z", "2026-11-20T05:00Z").start, window.end)
    assert (before.start, before.end) == (late.start - window.duration, late.end - window.duration)
    assert monitors._late_part(case, Window("2026-11-18T05:00Z", "2026-11-19T05:00Z"),
                               Window("2026-11-19T05:00Z", "2026-11-19T08:00Z")) is None  # 45 minutes: too short
    # a window that is not whole days: the same hours a day earlier, not one window earlier (another time of day)
    window = Window("2026-11-19T06:00Z", "2026-11-20T00:00Z")
    before, late = monitors._late_part(case, Window("2026-11-18T12:00Z", "2026-11-19T06:00Z"), window)
    assert (late.start, before.start, before.end) == (datetime(2026, 11, 19, 19, 30, tzinfo=UTC),
                                                      datetime(2026, 11, 18, 19, 30, tzinfo=UTC), datetime(2026, 11, 19, tzinfo=UTC))


def _without_labels(tmp_path, name: str, start: str):
    """A copy of a sample case whose labels from ``start`` on have not joined yet (the user's files stay as they are)."""
    import polars as pl

    case_dir = tmp_path / name
    shutil.copytree(sample_case(name), case_dir)
    cols = open_case(case_dir).columns
    log = case_dir / "predictions.parquet"
    frame = pl.read_parquet(log)
    cut = pl.lit(start).str.to_datetime(time_zone="UTC").cast(frame.schema[cols.timestamp])
    label = pl.when(pl.col(cols.timestamp) >= cut).then(None).otherwise(pl.col(cols.label)).alias(cols.label)
    frame.with_columns(label).write_parquet(log)
    return open_case(case_dir)


def test_a_serving_change_trips_calibration_while_labels_are_still_joining(tmp_path):
    # calibration_shift multiplies every logit by 1.71 from 02:00; no label of the incident day has joined yet, so
    # every label-based monitor skips, and only the prediction shift no input explains can see it
    case = _without_labels(tmp_path, "calibration_shift", "2026-11-20T00:00:00Z")
    report = guard(case, Window("2026-11-20T00:00Z", "2026-11-21T00:00Z"),
                   thresholds=dataclasses.replace(case.config.guard, snapshot_gate=False))
    by = {(m.monitor, m.target): m for m in report.monitors}
    assert by[("label_drift", case.columns.label)].status == "skip" and by[("calibration", "calibration_ratio")].status == "skip"
    shift = by[("calibration", "unexplained_prediction_shift")]
    assert shift.status == "trip" and report.tripped
    assert not math.isclose(shift.value, 1.0) and abs(math.log(shift.value)) > math.log(shift.threshold)
    assert not {m.monitor for m in report.trips} & {"feature_coverage", "feature_scale"}


def test_a_broken_input_explains_its_prediction_shift():
    # feature_scale_bug moves the predictions through f_user_ctr_30d (divided by 100): nothing is left unexplained
    case = open_case(sample_case("feature_scale_bug"))
    report = guard(case, Window("2026-11-20T00:00Z", "2026-11-21T00:00Z"))
    shift = next(m for m in report.monitors if m.target == "unexplained_prediction_shift")
    assert shift.status == "pass", shift.detail


def test_a_segment_that_collapses_alone_trips_the_segment_scan_from_its_onset_day_only(monkeypatch):
    """slice_shift: country=BR's clicks collapse from 11:00 on its last day, and the whole traffic's monitors pass that
    day (BR's rows are diluted by the rest). The segment scan over the log up to the window's end finds BR regressing
    from 11:00: the guard trips on that day through it alone, and passes the day before (the scan reads the log only
    up to the window's end, so the later collapse is not seen from there)."""
    from workbench.guardrails import monitors

    case = open_case(sample_case("slice_shift"))
    report = guard(case, Window("2026-11-20T00:00Z", "2026-11-21T00:00Z"))
    assert [(m.monitor, m.target) for m in report.trips] == [("quality", "normalized_entropy in country=BR")]
    trip = report.trips[0]
    assert "from 2026-11-20 11:00 UTC" in trip.detail and trip.value > 1.5 and trip.threshold is None
    jsonschema.validate({"case": case.name, "window": {"from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"},
                         "tripped": True, "monitors": [trip.to_dict()]}, GUARD)
    before = guard(case, Window("2026-11-19T00:00Z", "2026-11-20T00:00Z"))
    assert not before.tripped
    passed = next(m for m in before.monitors if m.target == "segments")
    assert passed.status == "pass" and "since" not in passed.detail  # the log up to the window's end shows no collapse
    monkeypatch.setattr(monitors, "_segment_change_point",
                        lambda case, baseline, window: monitors.MonitorResult("quality", "segments", "pass", None, None, ""))
    assert not guard(case, Window("2026-11-20T00:00Z", "2026-11-21T00:00Z")).tripped  # the segment scan is what trips it


@pytest.mark.parametrize("name", ["calibration_shift", "feature_coverage_drop", "feature_scale_bug", "feature_slice_break",
                                  "feature_stale", "label_drift", "slice_shift", "snapshot_bad_data", "snapshot_corrupt",
                                  "upstream_break"])
def test_every_sample_incident_trips_the_guard_on_the_day_of_its_onset(name):
    """The acceptance of the guard: it trips on the newest window of every incident whose onset falls in it (the
    day of the onset, as a daily scheduler would run it the evening after)."""
    from datetime import datetime, timedelta

    truth = json.loads((sample_case(name) / "truth.json").read_text())
    onset = datetime.fromisoformat(truth["onset"].replace("Z", "+00:00"))
    day = onset.replace(hour=0, minute=0, second=0, microsecond=0)
    report = guard(open_case(sample_case(name)), Window(day, day + timedelta(days=1)))
    assert report.tripped, str(report)


def test_a_regression_from_the_baseline_that_lasts_into_the_window_belongs_to_this_run():
    """An onset in the last hours of yesterday's window is one the scan could not see yesterday (it needs three
    periods of a shift), so today's run trips on it; one before the baseline, or one that ended before the window, was
    the business of earlier runs."""
    from datetime import UTC, datetime

    from workbench.guardrails.monitors import _segment_change_point, _this_run

    def t(day: int, hour: int) -> datetime:
        return datetime(2026, 11, day, hour, tzinfo=UTC)

    baseline, window = Window(t(19, 0), t(20, 0)), Window(t(20, 0), t(21, 0))
    assert _this_run(t(20, 5), None, baseline, window) and _this_run(t(19, 22), None, baseline, window)
    assert _this_run(t(19, 22), t(20, 3), baseline, window)
    assert not _this_run(t(19, 22), t(20, 0), baseline, window)  # over before the window
    assert not _this_run(t(18, 23), None, baseline, window) and not _this_run(None, None, baseline, window)
    # slice_shift's BR collapses at 11:00. Half-day runs: the one ending at noon holds one hour of it, too few for
    # the scan; the next one, whose baseline holds the onset, trips
    case = open_case(sample_case("slice_shift"))
    early = _segment_change_point(case, Window(t(20, 0) - (t(20, 12) - t(20, 0)), t(20, 0)), Window(t(20, 0), t(20, 12)))
    assert early.status == "pass"
    late = _segment_change_point(case, Window(t(20, 0), t(20, 12)), Window(t(20, 12), t(21, 0)))
    assert late.status == "trip" and late.target == "normalized_entropy in country=BR"


def test_the_whole_traffics_scan_counts_an_onset_in_the_baseline_that_lasts_into_the_window():
    """calibration_shift multiplies every logit by 1.71 from 02:00 on 11-20. A half-day run from noon holds none of the
    onset, its baseline does: the scan's trip belongs to it. A run whose baseline ends before the onset sees nothing."""
    from workbench.guardrails.monitors import _change_points

    case = open_case(sample_case("calibration_shift"))
    found = _change_points(case, Window("2026-11-20T00:00Z", "2026-11-20T12:00Z"), Window("2026-11-20T12:00Z", "2026-11-21T00:00Z"))
    assert "calibration_ratio" in found and "from 2026-11-20 02:00 UTC" in found["calibration_ratio"]
    assert _change_points(case, Window("2026-11-19T00:00Z", "2026-11-19T12:00Z"), Window("2026-11-19T12:00Z", "2026-11-20T00:00Z")) == {}


def _unscored_tail(tmp_path, share: float):
    """Sample `control` whose serving path wrote NaN for ``share`` of the rows of its last 12 hours."""
    from datetime import UTC, datetime

    import polars as pl

    root = shutil.copytree(sample_case("control"), tmp_path / f"nan_{share}")
    rows = pl.read_parquet(root / "predictions.parquet")
    late = pl.col("ts") >= datetime(2026, 11, 20, 12, tzinfo=UTC)
    lost = late & (pl.int_range(pl.len()) % 100 < round(share * 100))
    rows.with_columns(pl.when(lost).then(float("nan")).otherwise(pl.col("prediction")).alias("prediction")
                      ).write_parquet(root / "predictions.parquet")
    return root


def test_rows_served_without_a_prediction_trip_the_guard(tmp_path):
    """A review: with NaN predictions left out of every figure, a scoring service timing out in the newest hours passed
    the guard, and with every row of those hours unscored the newest window even ended before them. The window keeps
    the log's last hour of traffic, scored or not, and ``unscored_rows`` trips on the share's rise."""
    def unscored(report):
        return next(m for m in report.monitors if (m.monitor, m.target) == ("quality", "unscored_rows"))

    quiet = guard(open_case(sample_case("control")))
    assert unscored(quiet).status == "pass" and unscored(quiet).value == 0.0
    for share in (0.2, 1.0):
        case = open_case(_unscored_tail(tmp_path, share))
        report = guard(case)
        assert report.window.end == quiet.window.end  # the hours without any scored row still end the log
        m = unscored(report)
        assert report.tripped and m.status == "trip", m
        scored = case.hourly.filter(report.window.contains("hour"))["rows"].sum()
        assert m.value == pytest.approx(case.unscored.rows / (case.unscored.rows + scored))  # every one in the window
        assert f"{case.unscored.rows:,} in the window" in m.detail


def test_a_baseline_of_unscored_rows_is_no_baseline(tmp_path):
    """A second review: with the case's start counting unscored hours, a log whose first day the serving path left
    unscored gave the guard an empty baseline, and a monitor raised. The case's start and end are its scored rows'
    again (only the newest window reaches the unscored hours past them), so the run is refused as before."""
    from datetime import UTC, datetime

    import polars as pl

    root = shutil.copytree(sample_case("control"), tmp_path / "head")
    rows = pl.read_parquet(root / "predictions.parquet").filter(pl.col("ts") >= datetime(2026, 11, 19, tzinfo=UTC))
    rows.with_columns(pl.when(pl.col("ts") < datetime(2026, 11, 20, tzinfo=UTC)).then(float("nan"))
                      .otherwise(pl.col("prediction")).alias("prediction")).write_parquet(root / "predictions.parquet")
    case = open_case(root)
    assert case.start == datetime(2026, 11, 20, tzinfo=UTC) and case.unscored is not None
    with pytest.raises(WorkbenchError, match="no data before the window"):
        guard(case)


def test_a_gate_that_fails_on_calibration_reports_the_calibration_gates_value_and_threshold(monkeypatch):
    """The gate's value and threshold are those of the gate that failed, the one its detail names: an outside test's
    snapshot failed on calibration (0.127 worse in log units, tolerance 0.085) while value and threshold showed NE's
    passing pair (0.0212 under 0.0218), a trip whose numbers said pass."""
    import polars as pl

    import workbench.model.validation as validation
    from workbench.guardrails.monitors import _snapshot_gate

    case = open_case(sample_case("control"))
    rows = [("nan_rate", 0.0, 0.0, 0.0, 0.0, True), ("ne", 0.90, 0.88, 0.0212, 0.0218, True),
            ("auc", 0.77, 0.78, -0.01, 0.02, True), ("calibration_ratio", 0.897, 1.018, 0.127, 0.085, False)]
    failed = validation.Validation("cand", "ref", False, pl.DataFrame(rows, schema=validation.METRIC_SCHEMA, orient="row"),
                                   ("calibration ratio 0.897 vs 1.018: worse by 0.127 in log units", "NE within"), "rows", 1000)
    monkeypatch.setattr(validation, "validate_snapshot", lambda *a, **k: failed)
    window = Window("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z")
    result = _snapshot_gate(case, window, case.config.guard)
    assert result.status == "trip" and (result.value, result.threshold) == (0.127, 0.085) and "calibration" in result.detail
    passed = dataclasses.replace(failed, passed=True, metrics=failed.metrics.with_columns(pl.lit(True).alias("passed")))
    monkeypatch.setattr(validation, "validate_snapshot", lambda *a, **k: passed)
    result = _snapshot_gate(case, window, case.config.guard)
    assert result.status == "pass" and (result.value, result.threshold) == (0.0212, 0.0218)  # NE's, as before
    auc = [("nan_rate", 0.0, 0.0, 0.0, 0.0, True), ("ne", 0.90, 0.88, 0.0, 0.0218, True), ("auc", 0.73, 0.78, -0.05, 0.02, False)]
    failed_auc = dataclasses.replace(failed, metrics=pl.DataFrame(auc, schema=validation.METRIC_SCHEMA, orient="row"))
    monkeypatch.setattr(validation, "validate_snapshot", lambda *a, **k: failed_auc)
    result = _snapshot_gate(case, window, case.config.guard)
    assert result.status == "trip" and (result.value, result.threshold) == (0.05, 0.02)  # a fall of 0.05 beyond 0.02


@pytest.mark.parametrize("seed", [0, 1])
def test_a_traffic_mix_passes_the_guard_and_a_calibration_break_beside_it_trips(tmp_path, monkeypatch, seed):
    """NG's share goes from 10 % to 45 % at the newest day's start, and the model always served NG 0.6 higher in logit:
    the whole traffic's calibration ratio rises about 15 % (a trip without the mix reading, checked), but at the
    baseline's mix of country it holds. The same mix with every served logit + 0.15 from then trips."""
    from tests.data.analysis_data import write_case
    from workbench.guardrails import monitors

    mix = (48, "NG", 0.45, 0.6)
    case = open_case(write_case(tmp_path / "mix", seed=seed, onset=None, mix=mix))
    report = guard(case)
    cal = next(m for m in report.monitors if m.target == "calibration_ratio")
    assert not report.tripped and cal.status == "pass" and cal.value > 1.1, [m.detail for m in report.monitors if m.status != "pass"]
    assert "the traffic mix of 'country' moved calibration_ratio" in cal.detail and "a traffic-mix finding" in cal.detail
    broken = open_case(write_case(tmp_path / "break", seed=seed, onset=48, break_="calibration", offset=0.15, mix=mix))
    assert any(m.target == "calibration_ratio" and m.status == "trip" for m in guard(broken).monitors)
    monkeypatch.setattr(monitors, "_mix_pass", lambda result, *_: result)  # without the reading: a trip
    assert any(m.target == "calibration_ratio" and m.status == "trip" for m in guard(case).monitors)
