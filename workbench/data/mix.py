"""How much of a metric's move between two windows is the traffic mix's: the incident at the baseline's mix.

A model that over-predicts on one platform and under-predicts on another has a whole-traffic calibration ratio that
follows their shares: when traffic moves toward the first, the ratio rises though no segment's predictions changed
against its labels. Direct standardization (Kitagawa 1955: a change of a rate is the change of the mix plus the
change within its parts) separates the two. Each value of a slice column keeps its incident sums, scaled by its share
of the baseline's labelled rows over its share of the incident's; the scaled sums, pooled, are the incident at the
baseline's mix. The metric there, through the one definition every window uses
(:func:`workbench.data.quality.pool_sums`), against the baseline's is the move *within* the column's values; the rest
of the whole traffic's move is the mix's.

Only metrics that are ratios of sums standardize so (``STANDARDIZED``: NE, the calibration ratio, the label rate, the
prediction mean). AUC ranks rows across segments: a mix that moves it is not a weighted mean of the segments' AUCs,
and it is never read as the mix's here.

The two windows are compared over the values both hold labelled rows of. When values outside that common set carry
more than ``MAX_UNCOMMON`` of either window's labelled rows (new traffic, traffic that stopped), reweighting cannot
give back the baseline's population, and the column is not read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl

from workbench._render import fmt, jsonable
from workbench.data._frames import PERIOD
from workbench.data._sums import SUM_METRICS, SUMS
from workbench.data.quality import pool_sums
from workbench.windows import Window

__all__ = ["MAX_UNCOMMON", "STANDARDIZED", "MixReading", "mix_readings"]

STANDARDIZED = SUM_METRICS
MAX_UNCOMMON = 0.1  # share of a window's labelled rows in values the other window lacks, beyond which a column is not read
SIDES = ("baseline", "current", "within")


@dataclass(frozen=True, slots=True)
class MixReading:
    """One metric's move between two windows, and what is left of it at the baseline's mix of ``column``'s values.

    ``baseline`` and ``current`` are the windows' values over the values of ``column`` both hold; ``within`` is the
    incident's at the baseline's shares of them. ``sums`` holds the three sides' pooled sums (``SUMS``; the served
    predictions' own move is read from them). ``shares``: (value, baseline share, incident share) of the labelled
    rows, the largest moves first.
    """

    metric: str
    column: str
    baseline: float
    current: float
    within: float
    sums: dict[str, dict[str, float]]
    shares: tuple[tuple[str, float, float], ...]
    baseline_window: Window
    incident_window: Window

    def to_dict(self) -> dict:
        return jsonable({"metric": self.metric, "column": self.column, "baseline": self.baseline, "current": self.current,
                         "at_baseline_mix": self.within, "baseline_window": self.baseline_window.to_dict(),
                         "incident_window": self.incident_window.to_dict(),
                         "shares": [{"value": v, "baseline": b, "incident": i} for v, b, i in self.shares]})  # type: ignore[return-value]

    def __str__(self) -> str:
        moves = ", ".join(f"{v} {b:.0%} → {i:.0%}" for v, b, i in self.shares[:2])
        return (f"the traffic mix of '{self.column}' moved {self.metric} from {fmt(self.baseline)} to {fmt(self.current)} "
                f"({moves} of the labelled rows; {self.baseline_window} against {self.incident_window}); at the "
                f"baseline's mix it went from {fmt(self.baseline)} to {fmt(self.within)}")


def _sums(frame: pl.DataFrame) -> dict[str, float]:
    return {s: float(frame[s].sum()) for s in SUMS}


def _reading_sides(cells: pl.DataFrame, column: str) -> tuple[dict[str, dict[str, float]], pl.DataFrame] | None:
    """The three sides' pooled sums over ``column``'s common values and the shares table; None when the column is
    not read (module docstring)."""
    per = cells.group_by(PERIOD, column).agg(pl.col(s).sum() for s in SUMS)
    wide = per.filter(pl.col(PERIOD) == "baseline").drop(PERIOD).join(
        per.filter(pl.col(PERIOD) == "incident").drop(PERIOD), on=column, how="full", suffix="_i", coalesce=True,
        nulls_equal=True).with_columns(pl.exclude(column).fill_null(0))
    common = wide.filter((pl.col("labeled") > 0) & (pl.col("labeled_i") > 0))
    for side in ("labeled", "labeled_i"):
        total = float(wide[side].sum())
        if total <= 0 or float(common[side].sum()) < (1 - MAX_UNCOMMON) * total:
            return None
    share_b = pl.col("labeled") / pl.col("labeled").sum()
    share_i = pl.col("labeled_i") / pl.col("labeled_i").sum()
    common = common.with_columns(share_b.alias("share_b"), share_i.alias("share_i"))
    scaled = common.select((pl.col(f"{s}_i") * pl.col("share_b") / pl.col("share_i")).alias(s) for s in SUMS)
    sides = {"baseline": _sums(common), "current": _sums(common.select(pl.col(f"{s}_i").alias(s) for s in SUMS)),
             "within": _sums(scaled)}
    shares = common.select(pl.col(column).cast(pl.String).fill_null("null"), "share_b", "share_i")
    return sides, shares.sort((pl.col("share_i") - pl.col("share_b")).abs(), descending=True)


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
            b, c, w = (pool_sums(sides[k], m) for k in SIDES)
            if all(math.isfinite(x) for x in (b, c, w)):
                out.append(MixReading(m, column, b, c, w, sides, table, baseline, incident))
    return out
