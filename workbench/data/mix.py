"""How much of a metric's move between two windows is the traffic mix's: each window at the other's mix.

A model that over-predicts on one platform and under-predicts on another has a whole-traffic calibration ratio that
follows their shares: when traffic moves toward the first, the ratio rises though no segment's predictions changed
against its labels. Direct standardization (Kitagawa 1955: a change of a rate is the change of the mix plus the
change within its parts) separates the two. Each value of a slice column keeps its incident sums, scaled by its share
of the baseline's labelled rows over its share of the incident's; the scaled sums, pooled, are the incident at the
baseline's mix (``within``). The baseline's sums scaled the other way are the baseline at the incident's mix
(``shifted``). Either comparison, through the one definition every window uses
(:func:`workbench.data.quality.pool_sums`), is the move *within* the column's values, under one window's weights.

**The mix carries a move** (:func:`carried`) when the move over the values both windows hold is beyond the caller's
floor, and within the values, under *both* windows' weights, it is not, and is at most half of it. Both weights,
because one alone can hide a segment's own break: a segment that breaks as its share grows from 10 % to 45 % weighs
10 % at the baseline's mix, where its break can fall under the floor; at the incident's mix it weighs 45 %. Half,
because "carried by the mix" means most of the move, not a move that slipped under the floor by a little.

Only metrics of the labelled rows that are ratios of sums standardize so (``STANDARDIZED``: NE, log loss, the
calibration ratio, the label rate; the prediction mean is over every row, and the shares are of labelled rows). AUC
ranks rows across segments, not a weighted mean of theirs, and is never read as the mix's.

The windows are compared over the values both hold ``MIN_LABELED`` labelled rows of: a value thinner than that would
weigh its few rows by the ratio of its shares (a segment that fell from 40 % to 1 % of the traffic, forty times).
When values outside that common set carry more than ``MAX_UNCOMMON`` of either window's labelled rows (new traffic,
traffic that stopped), reweighting cannot give back the other window's population, and the column is not read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from workbench._render import fmt, jsonable
from workbench.data._frames import PERIOD
from workbench.data._sums import MIN_LABELED, SUMS
from workbench.data.quality import pool_sums
from workbench.windows import Window

__all__ = ["MAX_UNCOMMON", "STANDARDIZED", "MixReading", "carried", "mix_readings"]

STANDARDIZED = ("normalized_entropy", "log_loss", "calibration_ratio", "label_rate")
MAX_UNCOMMON = 0.1  # share of a window's labelled rows in values the other lacks (or holds too few of): column not read
SIDES = ("baseline", "current", "within", "shifted")


@dataclass(frozen=True, slots=True)
class MixReading:
    """One metric between two windows over the values of ``column`` both hold, each window also at the other's mix.

    ``values`` and ``sums`` (``SUMS``, from which the served predictions' own move is read) per side: ``baseline`` and
    ``current`` as they were, ``within`` the incident at the baseline's shares, ``shifted`` the baseline at the
    incident's. ``shares``: (value, baseline share, incident share) of the labelled rows, the largest moves first.
    """

    metric: str
    column: str
    values: dict[str, float]
    sums: dict[str, dict[str, float]]
    shares: tuple[tuple[str, float, float], ...]
    baseline_window: Window
    incident_window: Window

    def to_dict(self) -> dict:
        return jsonable({"metric": self.metric, "column": self.column, "baseline": self.values["baseline"],
                         "current": self.values["current"], "at_baseline_mix": self.values["within"],
                         "baseline_at_incident_mix": self.values["shifted"],
                         "baseline_window": self.baseline_window.to_dict(), "incident_window": self.incident_window.to_dict(),
                         "shares": [{"value": v, "baseline": b, "incident": i} for v, b, i in self.shares]})  # type: ignore[return-value]

    def __str__(self) -> str:
        v = self.values
        moves = ", ".join(f"{value} {b:.0%} → {i:.0%}" for value, b, i in self.shares[:2])
        return (f"the traffic mix of '{self.column}' moved {self.metric} from {fmt(v['baseline'])} to {fmt(v['current'])} "
                f"({moves} of the labelled rows; {self.baseline_window} against {self.incident_window}); at the "
                f"baseline's mix it went from {fmt(v['baseline'])} to {fmt(v['within'])}, at the incident's from "
                f"{fmt(v['shifted'])} to {fmt(v['current'])}")


def carried(reading: MixReading, size: Callable[[MixReading, str, str], float]) -> bool:
    """Whether the traffic mix carries ``reading``'s move (module docstring). ``size(reading, before, after)``: the
    worsening from side ``before`` to side ``after`` in units of the caller's floor (1 is the floor: the detector's
    materiality, a guard monitor's limit)."""
    whole = size(reading, "baseline", "current")
    if not whole >= 1:
        return False
    inside = (size(reading, "baseline", "within"), size(reading, "shifted", "current"))
    return all(x < 1 and x <= whole / 2 for x in inside)


def _sums(frame: pl.DataFrame) -> dict[str, float]:
    return {s: float(frame[s].sum()) for s in SUMS}


def _reading_sides(cells: pl.DataFrame, column: str) -> tuple[dict[str, dict[str, float]], pl.DataFrame] | None:
    """The four sides' pooled sums over ``column``'s common values and the shares table; None when the column is
    not read (module docstring)."""
    per = cells.group_by(PERIOD, column).agg(pl.col(s).sum() for s in SUMS)
    wide = per.filter(pl.col(PERIOD) == "baseline").drop(PERIOD).join(
        per.filter(pl.col(PERIOD) == "incident").drop(PERIOD), on=column, how="full", suffix="_i", coalesce=True,
        nulls_equal=True).with_columns(pl.exclude(column).fill_null(0))
    common = wide.filter((pl.col("labeled") >= MIN_LABELED) & (pl.col("labeled_i") >= MIN_LABELED))
    for side in ("labeled", "labeled_i"):
        total = float(wide[side].sum())
        if total <= 0 or float(common[side].sum()) < (1 - MAX_UNCOMMON) * total:
            return None
    share_b = pl.col("labeled") / pl.col("labeled").sum()
    share_i = pl.col("labeled_i") / pl.col("labeled_i").sum()
    common = common.with_columns(share_b.alias("share_b"), share_i.alias("share_i"))
    incident = common.select(pl.col(f"{s}_i").alias(s) for s in SUMS)
    sides = {"baseline": _sums(common), "current": _sums(incident),
             "within": _sums(common.select((pl.col(f"{s}_i") * pl.col("share_b") / pl.col("share_i")).alias(s) for s in SUMS)),
             "shifted": _sums(common.select((pl.col(s) * pl.col("share_i") / pl.col("share_b")).alias(s) for s in SUMS))}
    shares = common.select(pl.col(column).cast(pl.String).fill_null("null").alias("value"), "share_b", "share_i")
    return sides, shares.sort((pl.col("share_i") - pl.col("share_b")).abs(), "value", descending=[True, False])


def mix_readings(cells: pl.DataFrame, columns: tuple[str, ...], metrics: tuple[str, ...], baseline: Window,
                 incident: Window) -> list[MixReading]:
    """A :class:`MixReading` per slice column read and metric of ``STANDARDIZED`` among ``metrics``; ``cells``: the
    windows' sums per cross-product cell of ``columns`` (:func:`workbench.data._sums.window_cells`)."""
    out = []
    wanted = [m for m in metrics if m in STANDARDIZED]
    for column in columns if wanted else ():
        read = _reading_sides(cells, column)
        if read is None:
            continue
        sides, shares = read
        table = tuple((str(v), float(b), float(i)) for v, b, i in shares.iter_rows())
        for m in wanted:
            values = {k: pool_sums(sides[k], m) for k in SIDES}
            if all(math.isfinite(x) for x in values.values()):
                out.append(MixReading(m, column, values, sides, table, baseline, incident))
    return out
