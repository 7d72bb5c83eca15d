"""workbench.data.segments: a segment's own grain counts the positives the model expects, so a collapse keeps it
testable; a regression one segment holds alone is timed on that segment's series."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from tests.conftest import dev_case, sample_case
from workbench import open_case
from workbench.data.quality import pool, quality_between
from workbench.data.segments import _segment_grain


def _segment(positives_after: int) -> pl.DataFrame:
    """60 six-hour periods of a segment with 12 clicks expected per period; from period 45 only ``positives_after``."""
    start = datetime(2027, 2, 9, tzinfo=UTC)
    return pl.DataFrame({"window": [start + timedelta(hours=6 * k) for k in range(60)], "rows": [1_000] * 60,
                         "labeled": [950] * 60, "positives": [12] * 45 + [positives_after] * 15,
                         "pred_sum_labeled": [12.0] * 60})


def test_a_segment_whose_clicks_collapsed_keeps_the_grain_its_expected_clicks_allow():
    assert _segment_grain(_segment(12), "6h") == "6h"
    # a quarter of the periods with one click left: by observed clicks only 75% of the periods would be testable at
    # 6 h (the grain needs 80%) and the day would be the finest; by expected clicks the collapse stays at 6 h
    assert _segment_grain(_segment(1), "6h") == "6h"
    # and a segment the model expects few clicks in gets a coarser grain, whatever was observed
    thin = _segment(12).with_columns(pl.lit(3.0).alias("pred_sum_labeled"), pl.lit(3).alias("positives"))
    assert _segment_grain(thin, "6h") == "1d"


def test_a_segments_calibration_change_is_judged_by_its_exact_clicks():
    """The conditional binomial test of the two windows' clicks, against scipy's exact binomial test."""
    from types import SimpleNamespace

    from scipy.stats import binomtest

    from workbench.data.segments import _exact_p
    from workbench.windows import Window

    table = _segment(12).with_columns(pl.Series("positives", [12] * 45 + [0, 1, 0] + [12] * 12))
    start = table["window"][0]
    before = Window(start + timedelta(hours=6 * 42), start + timedelta(hours=6 * 45))
    during = Window(start + timedelta(hours=6 * 45), start + timedelta(hours=6 * 48))
    fewer = SimpleNamespace(baseline=before, incident=during, baseline_value=1.0, current_value=36.5 / 1.5)
    # 36 clicks expected in each window, 36 and 1 observed: the incident holds 1 of the 37, at an even share
    assert math.isclose(_exact_p(table, fewer), binomtest(1, 37, 0.5, alternative="less").pvalue, rel_tol=1e-9)
    more = SimpleNamespace(baseline=during, incident=before, baseline_value=24.3, current_value=1.0)
    assert math.isclose(_exact_p(table, more), binomtest(36, 37, 0.5, alternative="greater").pvalue, rel_tol=1e-9)
    # a few clicks: none of 5 expected is a 0.7% event, however many sampling errors the log scale makes of it
    few = _segment(12).with_columns(pl.lit(5.0).alias("pred_sum_labeled"),
                                    pl.Series("positives", [5] * 45 + [0] + [5] * 14))
    one = SimpleNamespace(baseline=Window(start + timedelta(hours=6 * 44), start + timedelta(hours=6 * 45)),
                          incident=Window(start + timedelta(hours=6 * 45), start + timedelta(hours=6 * 46)),
                          baseline_value=1.0, current_value=11.0)
    assert math.isclose(_exact_p(few, one), 0.5**5, rel_tol=1e-9)


def test_a_quiet_segment_whose_clicks_paused_for_45_minutes_is_no_regression(tmp_path):
    """dev control/quiet/115: one of 12 segments, about 6 clicks expected per 15 minutes, held 1 click in three
    periods. On the log scale that reads as robust z 6.9 against a threshold of 5.8, and the segment was blamed at
    confidence 1.00; the exact test against the same 45 minutes a day before gives p = 2.5e-4, short of the segment's
    level 0.001 / 12 = 8.3e-5."""
    from tests.conftest import dev_case
    from workbench import open_case
    from workbench.data.segments import detect_segment_onset

    path, truth = dev_case(tmp_path, "control", "quiet", 115)
    assert truth["kind"] == "none"
    assert detect_segment_onset(open_case(path)) is None


@pytest.mark.parametrize(("mode", "seed"), [("collapse", 7), ("decoupled", 15)])
def test_a_regression_one_segment_holds_alone_is_timed_on_that_segments_series(tmp_path, mode, seed):
    """Proving ground dev slice/collapse/7 (clicks fall in AU, 6 h grain) and slice/decoupled/15 (android's labels stop
    following the inputs): the whole traffic shows the regression, diluted by the rest, and its fit placed the end
    30 hours early in the first and 24 late in the second. On the segment's own series both ends fall within two
    periods of the truth, and so does the onset; which metrics regressed stays the whole traffic's verdict."""
    from workbench.data.onset import detect_onset, retimed
    from workbench.data.segments import locate_in_segment

    path, truth = dev_case(tmp_path, "slice", mode, seed)
    case = open_case(path)
    onset, end = (datetime.fromisoformat(truth[k].replace("Z", "+00:00")) for k in ("onset", "end"))
    whole = detect_onset(case)
    period = timedelta(hours=6)
    assert whole.detected and whole.grain == "6h" and whole.end is not None
    assert abs(whole.end - end) > 2 * period  # the diluted fit's end: what this test is about
    located = locate_in_segment(case, whole)
    assert located is not None and located.segment == truth["slice"], str(located)
    timed = retimed(case, whole, located.onset, located.segment)
    assert timed is not None and timed.end is not None
    assert abs(timed.end - end) <= 2 * period and abs(timed.onset - onset) <= period, (timed.onset, timed.end, truth)
    assert timed.incident == located.onset.incident and timed.metric == whole.metric
    assert [v.regressed for v in timed.metrics] == [v.regressed for v in whole.metrics]
    # the values are the whole traffic's, pooled over the segment's windows
    assert timed.current_value == pytest.approx(pool(quality_between(case, timed.incident), whole.metric), rel=1e-9)


def test_a_short_collapse_in_a_thin_segment_is_found_at_the_cases_grain(tmp_path):
    """Proving ground dev slice/collapse/13: AU (12 % of the traffic, a base rate of 0.5 %) loses most of its clicks
    for the log's last two and a half days. The segment's own grain is a day (too few clicks in most of its six-hour
    periods), where the incident's labelled days are under the three periods a shift needs; at the case's six hours it
    is a 5x calibration change. The whole traffic shows nothing."""
    from workbench.case.grain import GRAINS
    from workbench.data.onset import detect_onset
    from workbench.data.quality import quality_series
    from workbench.data.segments import _segment_grain, detect_segment_onset

    path, truth = dev_case(tmp_path, "slice", "collapse", 13)
    case = open_case(path)
    col, value = truth["slice"].split("=")
    own = _segment_grain(quality_series(case, by=col, every=case.grain.grain).table.filter(pl.col(col) == value),
                         case.grain.grain)
    assert case.grain.grain == "6h" and own is not None and GRAINS.index(own) > GRAINS.index("6h")
    assert not detect_onset(case).detected
    found = detect_segment_onset(case)
    assert found is not None and found.segment == truth["slice"] and found.onset.grain == "6h", str(found)
    assert found.onset.metric == "calibration_ratio" and found.onset.current_value > 3 * found.onset.baseline_value
    onset = datetime.fromisoformat(truth["onset"].replace("Z", "+00:00"))
    assert abs(found.onset.onset - onset) <= timedelta(hours=12)


def test_below_its_own_grain_a_segment_is_tested_on_its_calibration_alone(tmp_path):
    """Proving ground dev control/quiet/18: ipad's own grain is six hours; at the case's hour its NE rose 33 % for 19
    hours on a few clicks an hour, robust z 6.4 against a threshold of 5.9, and the slice search agreed. Below its
    own grain a segment's NE and AUC rest on normal approximations its clicks do not support: only its calibration
    ratio, which has an exact test, is scanned there."""
    from workbench.data.segments import detect_segment_onset

    path, truth = dev_case(tmp_path, "control", "quiet", 18)
    case = open_case(path)
    assert truth["kind"] == "none" and case.grain.grain == "1h"
    assert detect_segment_onset(case) is None
    assert detect_segment_onset(case, ("normalized_entropy",)) is None  # and none at all without the calibration


def test_a_regression_the_whole_traffic_holds_is_not_located_in_a_segment(tmp_path):
    """Proving ground dev feature/coverage_null/4 (two slice columns): a break every segment carries keeps the whole
    traffic's timing."""
    from workbench.data.onset import detect_onset
    from workbench.data.segments import locate_in_segment

    path, _ = dev_case(tmp_path, "feature", "coverage_null", 4)
    case = open_case(path)
    whole = detect_onset(case)
    assert case.slices and whole.detected and locate_in_segment(case, whole) is None


def test_the_segment_scan_until_a_time_reads_no_row_served_after_it(monkeypatch):
    """``until`` is what a guard run at that time could see: slice_shift's BR collapses at 11:00 on 11-20. Read up to
    15:30 (mid-period), the scan finds it, and the slice search that confirms it is given windows that end at 15:30,
    not at the end of the period 15:00-16:00; read up to 11:30 the collapse is half an hour old and not found. A naive
    time is UTC. ``accept`` filters the onsets that compete."""
    from workbench.data import segments

    case = open_case(sample_case("slice_shift"))
    seen = []
    search = segments.find_slices
    monkeypatch.setattr(segments, "find_slices", lambda case, baseline, incident, **kw: seen.append(incident) or
                        search(case, baseline, incident, **kw))
    found = segments.detect_segment_onset(case, until="2026-11-20T15:30")
    assert found is not None and found.segment == "country=BR" and found.onset.onset.hour == 11
    until = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
    assert seen and max(w.end for w in seen) <= until
    assert segments.detect_segment_onset(case, until="2026-11-20T11:30Z") is None
    assert segments.detect_segment_onset(case, accept=lambda onset: False) is None
    assert segments.detect_segment_onset(case, accept=lambda onset: onset.onset.hour == 11).segment == "country=BR"


def _new_platform(tmp_path, click_factor: float):
    """Sample `control` where a tenth of the rows from 11-20 06:00 come from a platform the log has not seen before,
    ``visionos``; their clicks are drawn again at ``click_factor`` times the served prediction (a population the
    model has not seen: its true click rate is not the one the model predicts)."""
    import shutil

    import numpy as np

    root = shutil.copytree(sample_case("control"), tmp_path / f"case_{click_factor}")
    rows = pl.read_parquet(root / "predictions.parquet")
    rng = np.random.default_rng(7)
    late = (rows["ts"] >= datetime(2026, 11, 20, 6, tzinfo=UTC)).to_numpy()
    new = late & (rng.random(rows.height) < 0.1)
    p = rows["prediction"].cast(pl.Float64).to_numpy()
    redrawn = (rng.random(rows.height) < np.clip(click_factor * p, 0, 0.99)).astype(np.int64)
    rows.with_columns(pl.when(pl.Series(new)).then(pl.lit("visionos")).otherwise(pl.col("platform")).alias("platform"),
                      pl.when(pl.Series(new) & pl.col("label").is_not_null()).then(pl.Series(redrawn))
                      .otherwise(pl.col("label")).cast(rows["label"].dtype).alias("label")
                      ).write_parquet(root / "predictions.parquet")
    return root


def test_a_segment_new_to_the_log_is_compared_with_the_traffic_it_joined(tmp_path):
    """Outside test i15: a new app version with a click rate the model did not know read "no regression", since a
    value without history has no series of its own to shift from. Its calibration is now scanned on one series, the
    rest of the traffic's until it appeared and its own from there. Here its clicks are twice what the model predicts
    (calibration about 0.5 against 1.0 before); the same new platform at the model's own click rate is no
    regression."""
    from workbench.data.quality import quality_series
    from workbench.data.segments import _first_seen, detect_segment_onset

    case = open_case(_new_platform(tmp_path, 2.0))
    table = quality_series(case, by="platform", every="1h").table
    assert _first_seen(table, "platform", "1h") == {"visionos": datetime(2026, 11, 20, 6, tzinfo=UTC)}
    found = detect_segment_onset(case)
    assert found is not None and found.segment == "platform=visionos", str(found)
    assert found.onset.metric == "calibration_ratio" and found.onset.current_value < 0.7 * found.onset.baseline_value
    assert abs(found.onset.onset - datetime(2026, 11, 20, 6, tzinfo=UTC)) <= timedelta(hours=1)
    assert detect_segment_onset(open_case(_new_platform(tmp_path, 1.0))) is None


def test_null_slice_values_beside_a_new_segment_are_no_value(tmp_path):
    """A review's case: a slice column that starts logging nulls when the new platform arrives made a null a new
    value, and sorting it beside the new platform raised (the diagnosis and the guard call the scan unguarded)."""
    import numpy as np

    from workbench.data.quality import quality_series
    from workbench.data.segments import _first_seen, detect_segment_onset

    root = _new_platform(tmp_path, 2.0)
    rows = pl.read_parquet(root / "predictions.parquet")
    rng = np.random.default_rng(3)
    late = (rows["ts"] >= datetime(2026, 11, 20, 6, tzinfo=UTC)).to_numpy() & (rows["platform"] != "visionos").to_numpy()
    blank = late & (rng.random(rows.height) < 0.1)
    platform = pl.when(pl.Series(blank)).then(pl.lit(None)).otherwise(pl.col("platform"))
    rows.with_columns(platform.alias("platform")).write_parquet(root / "predictions.parquet")
    case = open_case(root)
    table = quality_series(case, by="platform", every="1h").table
    assert _first_seen(table, "platform", "1h") == {"visionos": datetime(2026, 11, 20, 6, tzinfo=UTC)}
    found = detect_segment_onset(case)
    assert found is not None and found.segment == "platform=visionos", str(found)


def test_a_new_segment_is_named_as_new_and_recalibrated_against_the_traffic_it_joined(tmp_path):
    """The diagnosis of the same case: the new platform is the cause, worded as new (its next step is not a hunt for
    a product change in a segment that has always been there), and its recalibration is measured against the
    traffic it joined (before: "not simulated: too few labelled baseline rows"). The platform column's move away
    from the training mix is a population change, never a broken feature."""
    from workbench import diagnose

    result = diagnose(open_case(_new_platform(tmp_path, 2.0)))
    assert result.anomaly["detected"], result.anomaly
    top = result.top
    assert top is not None and top.kind == "slice" and top.target == "platform=visionos", [c.to_dict() for c in result.root_causes]
    assert top.situation == "new" and "new in the incident" in top.summary
    assert "is new in the incident" in result.next_steps()[0]
    assert not any(c.kind == "feature" and c.target in result.case.slices for c in result.root_causes)
    fix = next(m for m in top.mitigations if m.action == "recalibrate")
    assert fix.predicted is not None and fix.predicted.recovery > 0.5, fix
    assert not result.errors


def _recovering_segment(tmp_path, factors: tuple[float, float, float]):
    """A week of the small case at 500 rows an hour with a slice column ``surface``, ``sidebar`` on 15 % of the rows;
    from hour 96 the sidebar's clicks are drawn again at ``factors`` times the served prediction, one factor a day
    (outside test 4, ``i15``: a redesign raised the sidebar's click rate x1.8, and the model's daily refreshes took
    some of it back)."""
    import numpy as np

    from tests.conftest import write_small_case

    root = write_small_case(tmp_path / f"case_{factors[0]}", hours=168, per_hour=500, seed=3)
    rows = pl.read_parquet(root / "predictions.parquet")
    rng = np.random.default_rng(11)
    hours = ((rows["ts"] - datetime(2026, 11, 18, tzinfo=UTC)).dt.total_seconds() / 3600).to_numpy()
    factor = np.select([hours < 96, hours < 120, hours < 144], [1.0, *factors[:2]], factors[2])
    rows = rows.with_columns(pl.Series("surface", rng.choice(["sidebar", "feed"], rows.height, p=[0.15, 0.85])))
    moved = (rows["surface"] == "sidebar").to_numpy() & (factor != 1.0)
    redrawn = (rng.random(rows.height) < np.clip(factor * rows["prediction"].to_numpy(), 0, 0.99)).astype(np.int8)
    rows.with_columns(pl.when(pl.Series(moved)).then(pl.Series(redrawn)).otherwise(pl.col("label")).cast(pl.Int8)
                      .alias("label")).write_parquet(root / "predictions.parquet")
    return root


def test_at_its_own_grain_a_segments_calibration_is_also_scanned_on_its_counts(tmp_path):
    """The per-period fit pays for the day-to-day variance it estimates from what the best shift leaves: a change that
    partly recovers leaves its own days apart, and hides itself (outside test 4, ``i15``: the sidebar's calibration
    0.93 -> 0.59 read robust z 5.0 against 6.1 at its own hour, and "no regression"). Its clicks' counts show it
    (7.2 against 5.8), so a segment's calibration is scanned on them at its own grain too, not only below it."""
    from workbench.data.onset import detect_onset
    from workbench.data.quality import QualitySeries, quality_series
    from workbench.data.segments import detect_segment_onset
    from workbench.data.slices import slice_filter

    case = open_case(_recovering_segment(tmp_path, (1.8, 1.4, 1.2)))
    own = quality_series(case, every="1h", rows=slice_filter("surface=sidebar")).table
    assert case.grain.grain == "1h" and _segment_grain(own, "1h") == "1h"
    assert not detect_onset(case).detected
    found = detect_segment_onset(case)
    assert found is not None and found.segment == "surface=sidebar" and found.onset.grain == "1h", str(found)
    assert found.onset.metric == "calibration_ratio" and found.onset.onset == datetime(2026, 11, 22, tzinfo=UTC)
    assert found.onset.current_value < 0.75 * found.onset.baseline_value
    # the fit alone, at the level the scan gives each of its series, does not see it
    fit = detect_onset(QualitySeries(table=own, every="1h", by=()), alpha=found.alpha / found.tested)
    assert not fit.detected, str(fit)
    assert detect_segment_onset(open_case(_recovering_segment(tmp_path, (1.0, 1.0, 1.0)))) is None


def _small_segment(tmp_path, segment_factor: float, rest_factor: float):
    """A week of the small case at 500 rows an hour with a slice column ``client``, ``beta`` on 3 % of the rows (under
    ``min_share``); from hour 96 the beta rows' clicks are drawn again at ``segment_factor`` times the served
    prediction and the rest's at ``rest_factor`` (outside test 6, ``i14``: a beta client holding 2.5 % of the traffic
    sent placeholder context, calibration 0.95 -> 2.76 in it, while the rest drifted 4 % the other way)."""
    import numpy as np

    from tests.conftest import write_small_case

    root = write_small_case(tmp_path / f"case_{segment_factor}", hours=168, per_hour=500, seed=5)
    rows = pl.read_parquet(root / "predictions.parquet")
    rng = np.random.default_rng(13)
    late = (((rows["ts"] - datetime(2026, 11, 18, tzinfo=UTC)).dt.total_seconds() / 3600) >= 96).to_numpy()
    rows = rows.with_columns(pl.Series("client", rng.choice(["beta", "stable"], rows.height, p=[0.03, 0.97])))
    factor = np.where((rows["client"] == "beta").to_numpy(), segment_factor, rest_factor)
    redrawn = (rng.random(rows.height) < np.clip(factor * rows["prediction"].to_numpy(), 0, 0.99)).astype(np.int8)
    rows.with_columns(pl.when(pl.Series(late)).then(pl.Series(redrawn)).otherwise(pl.col("label")).cast(pl.Int8)
                      .alias("label")).write_parquet(root / "predictions.parquet")
    return root


def test_a_segment_under_min_share_is_scanned_on_its_clicks_with_a_tenth_of_the_alpha(tmp_path):
    """A segment under ``min_share`` was not tested at all, however far its calibration went; it is now tested on its
    clicks' counts (an exact law, the one its few clicks support) with ``MINORITY_ALPHA`` of the segments' alpha. The
    slice search that confirms it is oriented the way the segment's own series moved: the whole traffic's calibration
    fell (the rest's clicks rose 4 %), and oriented that way the segment whose calibration rose x2.5 was no slice."""
    from workbench.data.onset import detect_onset
    from workbench.data.segments import detect_segment_onset
    from workbench.data.slices import find_slices

    case = open_case(_small_segment(tmp_path, 0.4, 1.04))
    assert not detect_onset(case).detected
    found = detect_segment_onset(case)
    assert found is not None and found.segment == "client=beta", str(found)
    assert found.onset.metric == "calibration_ratio" and found.onset.current_value > 2 * found.onset.baseline_value
    assert abs(found.onset.onset - datetime(2026, 11, 22, tzinfo=UTC)) <= timedelta(hours=6), str(found)
    onset = found.onset
    whole_way = find_slices(case, onset.baseline, onset.incident, metric="calibration_ratio")
    assert whole_way.total_delta < 0 and not whole_way.table.filter(pl.col("slice") == "client=beta")["significant"].any()
    its_way = find_slices(case, onset.baseline, onset.incident, metric="calibration_ratio", direction=1)
    assert its_way.top is not None and its_way.top["slice"] == "client=beta" and its_way.top["significant"]
    assert detect_segment_onset(open_case(_small_segment(tmp_path, 1.0, 1.04))) is None

