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
"""

from __future__ import annotations

import polars as pl

from workbench.case.columns import TS

__all__ = ["FOLLOWS", "KEYS", "calendar_features"]

FOLLOWS = 0.99  # share of the incident's rows (with a key the baseline saw) that must hold the baseline's value
MIN_SEEN = 0.5  # share of the incident's rows whose key the baseline saw, below which nothing can be said
KEYS = {
    "hour of day": pl.col(TS).dt.hour().cast(pl.Int32),
    "day of week": pl.col(TS).dt.weekday().cast(pl.Int32),
    "hour of week": (pl.col(TS).dt.weekday().cast(pl.Int32) - 1) * 24 + pl.col(TS).dt.hour().cast(pl.Int32),
}


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
        groups = (baseline.select(key.alias("_key"), *left).drop_nulls("_key").group_by("_key")
                  .agg(pl.len().alias("_rows"), *(pl.col(f).n_unique().alias(f"{f}|u") for f in left),
                       *(pl.col(f).first().alias(f) for f in left))
                  .filter(pl.col("_rows") >= 2))
        if groups.height < 2:
            continue
        mapped = [f for f in left if groups[f"{f}|u"].max() == 1 and groups[f].n_unique() > 1]
        if not mapped:
            continue
        if not follow:
            out |= dict.fromkeys(mapped, name)
            continue
        joined = incident.select(key.alias("_key"), *mapped).join(
            groups.select("_key", *(pl.col(f).alias(f"{f}|b") for f in mapped)), on="_key", how="inner")
        if joined.height < MIN_SEEN * incident.height:
            continue
        follows = joined.select(pl.col(f).eq_missing(pl.col(f"{f}|b")).mean().alias(f) for f in mapped).row(0, named=True)
        out |= {f: name for f in mapped if follows[f] is not None and follows[f] >= FOLLOWS}
    return out
