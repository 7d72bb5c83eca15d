"""Features that are the timestamp's calendar: found in both windows, and not when the clock itself broke."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from tests.conftest import dev_case
from workbench.case.columns import TS
from workbench.data.calendar import calendar_features


def _rows(start: datetime, days: float, seed: int, zone_hours: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = int(days * 24 * 40)
    ts = [start + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, days * 86_400, n))]
    frame = pl.DataFrame({TS: ts}).with_columns(pl.col(TS).dt.replace_time_zone("UTC"))
    local = pl.col(TS) + pl.duration(hours=zone_hours)
    return frame.with_columns(
        ((local.dt.weekday() - 1) * 24 + local.dt.hour()).cast(pl.Float32).alias("hour_of_week"),
        (local.dt.weekday() >= 6).cast(pl.Float32).alias("is_weekend"),
        pl.Series("ctr_7d", rng.lognormal(-3, 0.5, n).astype(np.float32)),
        pl.lit(1.0).alias("constant"),
    )


def test_clock_features_are_found_with_their_key_and_others_are_not():
    start = datetime(2026, 3, 2, tzinfo=UTC)
    baseline, incident = _rows(start, 9, 0), _rows(start + timedelta(days=9), 13, 1)  # windows of unequal length
    found = calendar_features(baseline, incident, ["hour_of_week", "is_weekend", "ctr_7d", "constant"])
    assert found == {"hour_of_week": "hour of week", "is_weekend": "day of week"}


def test_a_clock_that_broke_is_not_calendar():
    # a time-zone bug: from the incident on the clock features are computed seven hours off, still a function of the
    # timestamp but no longer the baseline's function, so they stay candidates like any feature
    start = datetime(2026, 3, 2, tzinfo=UTC)
    baseline, incident = _rows(start, 9, 0), _rows(start + timedelta(days=9), 4, 1, zone_hours=7)
    assert calendar_features(baseline, incident, ["hour_of_week", "is_weekend"]) == {}


def test_a_clock_feature_whose_windows_cover_different_hours_is_not_named_a_cause(tmp_path):
    # shift/boolean_share (dev seed 14): creative_is_new's share fell over two days; the log starts nine days before
    # the onset, so no placebo window, and hour_of_week (13 incident days against 9 baseline days) drifted by JS 0.19:
    # it was named first, above the shift
    from workbench import diagnose, open_case
    from workbench.rca.checks._common import calendar
    from workbench.rca.context import Context

    path, truth = dev_case(tmp_path, "shift", "boolean_share", 14)
    assert calendar(Context(open_case(path))) == {"hour_of_week": "hour of week"}
    found = diagnose(path)
    assert "hour_of_week" not in {c.target for c in found.root_causes}
    top = found.root_causes[0]
    assert (top.kind, top.target, top.change) == ("feature", truth["target"], "shift")


def test_a_smooth_clock_is_calendar_and_one_an_hour_off_is_not():
    """A prior for the time of day computed from the timestamp to the second holds no value twice, so no key maps it
    exactly; the minute of the day explains all but a millionth of it. An incident window from 14:00 holds other
    hours than its baseline, and such a prior "drifted" (an outside test named it the cause at 0.95): it is calendar
    now. The same prior an hour off in the incident (a time-zone bug), a daily pattern with noise on it, and a
    feature with nulls are not."""
    start = datetime(2026, 6, 1, tzinfo=UTC)

    def rows(begin: datetime, hours: float, seed: int, lag_hours: float = 0.0) -> pl.DataFrame:
        rng = np.random.default_rng(seed)
        n = int(hours * 600)
        ts = [begin + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, hours * 3600, n))]
        frame = pl.DataFrame({TS: ts}).with_columns(pl.col(TS).dt.replace_time_zone("UTC"))
        hour = (frame[TS].dt.hour() + frame[TS].dt.minute() / 60 + frame[TS].dt.second() / 3600).to_numpy() - lag_hours
        prior = 0.2 * np.cos(2 * np.pi * (hour - 20) / 24)
        return frame.with_columns(pl.Series("hour_prior", prior.astype(np.float32)),
                                  pl.Series("busy", (prior + rng.normal(0, 0.05, n)).astype(np.float32)),
                                  pl.Series("gappy", np.where(rng.random(n) < 0.1, np.nan, prior)).fill_nan(None))

    baseline, incident = rows(start, 38, 0), rows(start + timedelta(hours=38), 34, 1)
    assert calendar_features(baseline, incident, ["hour_prior", "busy", "gappy"]) == {"hour_prior": "time of day"}
    late = rows(start + timedelta(hours=38), 34, 1, lag_hours=1.0)
    assert calendar_features(baseline, late, ["hour_prior"]) == {}


def test_a_slow_quantity_is_no_smooth_clock_without_an_incident_to_follow():
    """A review's cases: with ``follow=False`` (no incident to check against) a quantity that only changes slowly is
    constant within a minute of one day, so a one-day baseline read it as a function of the time of day. The minute
    must now repeat on two days of the baseline; a smooth prior still qualifies over two days, also at 150 rows an
    hour (each minute's own spread from two to five rows was too noisy for the band: the pooled one is used)."""
    start = datetime(2026, 6, 1, tzinfo=UTC)

    def rows(hours: float, per_hour: int, seed: int) -> pl.DataFrame:
        rng = np.random.default_rng(seed)
        n = int(hours * per_hour)
        ts = [start + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, hours * 3600, n))]
        frame = pl.DataFrame({TS: ts}).with_columns(pl.col(TS).dt.replace_time_zone("UTC"))
        hour = (frame[TS].dt.hour() + frame[TS].dt.minute() / 60 + frame[TS].dt.second() / 3600).to_numpy()
        days = (frame[TS] - frame[TS].min()).dt.total_seconds().to_numpy() / 86_400
        return frame.with_columns(pl.Series("hour_prior", 0.2 * np.cos(2 * np.pi * (hour - 20) / 24)),
                                  pl.Series("ramp", 5 + np.floor(days * 1440) / 1440))
    one_day = rows(24, 600, 0)
    assert calendar_features(one_day, one_day, ["hour_prior", "ramp"], follow=False) == {}
    two_days = rows(48, 150, 1)
    assert calendar_features(two_days, two_days, ["hour_prior", "ramp"], follow=False) == {"hour_prior": "time of day"}
    later = rows(72, 150, 2).filter(pl.col(TS) >= start + timedelta(hours=48))
    assert calendar_features(two_days, later, ["hour_prior", "ramp"]) == {"hour_prior": "time of day"}
