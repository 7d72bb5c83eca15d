"""Features that are the timestamp's calendar (hour of day, day of week, hour of week): their drift is the windows'.

A model often reads the clock (``hour_of_week``, ``is_weekend``). Such a feature's
distribution over a window is fixed by which hours the window covers: an incident
window of thirteen days against a baseline of nine moves it as much as any broken
feed, and the drift check (whose placebo needs data before the baseline) cannot
always tell. A feature is *calendar* when, in the baseline's sample, it is a
non-constant function of one of the keys below (every key seen on two rows or more
holds one value) and the incident's rows still follow that same function (at least
``FOLLOWS`` of those whose key the baseline saw): then its values are exactly what
the incident's timestamps imply, and nothing about it broke. A clock that did break
(a time-zone bug, a feed that stopped updating) no longer follows the function, so
it stays a candidate like any other feature.

A clock can also be smooth: a prior for the time of day computed from the timestamp to the second (``0.2 cos(2 pi
(h - 20) / 24)`` of the fractional hour) holds hundreds of values in an hour and none twice. It is calendar when the
minute of the day explains all but ``WITHIN_SHARE`` of its variance (a cosine over the day leaves a millionth
within a minute) and the incident's rows lie within ``TOLERANCE_SD`` pooled within-minute standard deviations of the
baseline's mean at their minute (a quantity that merely changes slowly is constant within a minute of one day too,
but on later days it does not follow; without an incident to follow, ``follow=False``, the minute must have been seen
on two days of the baseline) (outside test 7: such a prior "drifted" as an incident window from
14:00 held other hours than its baseline, and was named the cause of a snapshot's miscalibration at 0.95). A clock
off by an hour is far outside that spread. The keys are UTC's: a prior kept in local time moves by an hour at a
daylight-saving switch, exactly as a clock that broke, and stays a candidate (outside test 7's `c13`: the guard's
drift monitor trips on it the day of the switch).
"""

from __future__ import annotations

import math

import polars as pl

from workbench.case.columns import TS

__all__ = ["FOLLOWS", "KEYS", "TOLERANCE_SD", "WITHIN_SHARE", "calendar_features"]

FOLLOWS = 0.99  # share of the incident's rows (with a key the baseline saw) that must hold the baseline's value
MIN_SEEN = 0.5  # share of the incident's rows whose key the baseline saw, below which nothing can be said
SMOOTH_KEY = "time of day"  # the one key a smooth clock is read against (without an incident: keys seen on two days)
KEYS = {
    "hour of day": pl.col(TS).dt.hour().cast(pl.Int32),
    "day of week": pl.col(TS).dt.weekday().cast(pl.Int32),
    "hour of week": (pl.col(TS).dt.weekday().cast(pl.Int32) - 1) * 24 + pl.col(TS).dt.hour().cast(pl.Int32),
    SMOOTH_KEY: pl.col(TS).dt.hour().cast(pl.Int32) * 60 + pl.col(TS).dt.minute().cast(pl.Int32),  # to the minute
}
WITHIN_SHARE = 1e-3  # a smooth clock: the share of its baseline variance its key leaves unexplained, at most
TOLERANCE_SD = 4.0  # ... and an incident row within this many pooled within-key standard deviations of the key's mean


def calendar_features(baseline: pl.DataFrame, incident: pl.DataFrame, features: tuple[str, ...] | list[str],
                      follow: bool = True) -> dict[str, str]:
    """The ``features`` that are a function of the timestamp's calendar in both windows' rows (``TS`` and the
    features), with the key each follows (``"hour of week"``); see the module docstring. With ``follow`` False, those
    that are one in the baseline's rows alone: a clock whose incident values the baseline's hours could not show
    (a baseline of two days holds 48 of the week's 168 hours), which may still have broken."""
    feats = [f for f in features if f in baseline.columns and f in incident.columns]
    if not feats or baseline.height < 2 or incident.height == 0:
        return {}
    out: dict[str, str] = {}
    for name, key in KEYS.items():
        left = [f for f in feats if f not in out]
        if not left:
            break
        keyed = baseline.select(key.alias("_key"), pl.col(TS).dt.date().alias("_day"), *left).drop_nulls("_key")
        groups = (keyed.group_by("_key")
                  .agg(pl.len().alias("_rows"), pl.col("_day").n_unique().alias("_days"),
                       *(pl.col(f).n_unique().alias(f"{f}|u") for f in left),
                       *(pl.col(f).first().alias(f) for f in left), *(pl.col(f).mean().alias(f"{f}|m") for f in left),
                       *(pl.col(f).var(ddof=0).alias(f"{f}|v") for f in left))
                  .filter(pl.col("_rows") >= 2))
        if name == SMOOTH_KEY and not follow:  # with no incident to follow it, a time of day is a clock only where the
            groups = groups.filter(pl.col("_days") >= 2)  # baseline saw it repeat on two days or more
        if groups.height < 2:
            continue
        exact = [f for f in left if groups[f"{f}|u"].max() == 1 and groups[f].n_unique() > 1]
        kept = keyed.filter(pl.col("_key").is_in(groups["_key"].implode()))
        spread = {f: sd for f in left if f not in exact and name == SMOOTH_KEY
                  and (sd := _smooth(kept, groups, f)) is not None}
        if not exact and not spread:
            continue
        if not follow:
            out |= dict.fromkeys([*exact, *spread], name)
            continue
        joined = incident.select(key.alias("_key"), *exact, *spread).join(
            groups.select("_key", *(pl.col(f).alias(f"{f}|b") for f in exact), *(pl.col(f"{f}|m") for f in spread)),
            on="_key", how="inner")
        if joined.height < MIN_SEEN * incident.height:
            continue
        follows = joined.select(*(pl.col(f).eq_missing(pl.col(f"{f}|b")).mean().alias(f) for f in exact),
                                *((pl.col(f) - pl.col(f"{f}|m")).abs().le(TOLERANCE_SD * sd).fill_null(False).mean().alias(f)
                                  for f, sd in spread.items())).row(0, named=True)
        out |= {f: name for f in (*exact, *spread) if follows[f] is not None and follows[f] >= FOLLOWS}
    return out


def _smooth(keyed: pl.DataFrame, groups: pl.DataFrame, feature: str) -> float | None:
    """The pooled standard deviation of ``feature`` within the key when it is a non-constant function of the key up to
    ``WITHIN_SHARE`` of its variance in the baseline's rows (``keyed``: the key and the features, of the keys ``groups``
    holds), else None. Pooled over the keys, not each key's own: two to five rows a minute estimate a key's spread too
    poorly for a 4-SD band (a review: at 60-150 rows an hour no smooth clock was recognised)."""
    total = keyed[feature].var(ddof=0)
    if not isinstance(total, float) or not total > 0 or keyed[feature].null_count():
        return None
    within = float((groups["_rows"] * groups[f"{feature}|v"]).sum()) / float(groups["_rows"].sum())
    return math.sqrt(within) if within <= WITHIN_SHARE * total else None
