"""Snapshots that served side by side: a canary or an A/B arm compared with the traffic beside it.

When the serving log names the snapshot of every row and two snapshots served in the same hours (a canary, an A/B
test of a new model, a partial rollout), the rows of each are a natural experiment: the same hours, the same
population, another model. A snapshot whose rows are worse than the rows served beside it in those hours is a cause
that needs no model file and no ``snapshots/index.csv``: the log alone shows it.

For each snapshot that served labelled rows in at least ``MIN_HOURS`` hours where another snapshot served too (a
routine refresh hands over within the hour of its publish; there the rows of the two differ in time, not only in
model: a feature that broke in that hour lands on the newer one), its rows' sums are compared
with the other snapshots' sums in the same hours, reweighted hour by hour to its own labelled rows (post-stratification:
a rollout that grows from 5 % to 50 % over the day's cycle is not compared with the night's traffic of the others).
Its **excess** is the difference of the metric on the scale comparisons use (:mod:`workbench.metrics`; log for the
calibration ratio). The excess is read in both windows and the change between them is the finding (a difference in
differences): an arm that was always a little worse is no cause of this regression, and an arm whose snapshot turned
worse under the same id is one. A snapshot new in the incident (too few rows beside others in the baseline) is taken
to have served as the others did (excess 0). The change over its sampling error (the four errors in quadrature) is a
z; a snapshot is ``significant`` when its one-sided p-value (two-sided for the calibration ratio, which regresses
either way), Bonferroni-corrected over the snapshots tested, is below ``alpha``, and ``material`` when its rows,
against the rows beside them shifted by the baseline's excess, clear the detector's floor
(:func:`workbench.data.onset.material`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from workbench._render import fmt, jsonable, records
from workbench.case.columns import SNAPSHOT, TS
from workbench.data._frames import PERIOD, collect_sums
from workbench.data._sums import SUMS, sum_aggs
from workbench.data.onset import DIRECTION, material, served_move
from workbench.metrics import LOG_SCALE, comparison_scale, counted_positives, metric_from_sums, norm_sf

if TYPE_CHECKING:
    from workbench.case.loader import Case
    from workbench.windows import Window

__all__ = ["ServedSide", "served_side_by_side"]

HOUR = "_hour"
MIN_LABELED, MIN_POSITIVES = 50, 5  # the slice search's minimum support (workbench.data.slices)
MIN_HOURS = 3  # hours a snapshot must share with another: a refresh hands over within an hour or two


@dataclass(frozen=True, slots=True)
class ServedSide:
    """Snapshots compared with the traffic served beside them (module docstring).

    ``table``: ``snapshot_id``, ``share`` (of the incident's labelled rows), ``baseline_share``, ``value`` (its rows
    in the shared hours), ``beside`` (the others' rows in the same hours, reweighted to its own), ``z`` (oriented:
    positive is worse), ``explained_share`` (its share of the rows times its excess over the rows beside it, over the
    whole traffic's change between the windows, ``total_delta``: the part of the regression its rows carry; the
    excess is the change of its excess since the baseline),
    ``p_value`` (Bonferroni-adjusted), ``significant``, ``material``, ``baseline_excess`` (null when ``new``), worst
    first. ``tested``: the snapshots with enough rows beside another. ``worse``: the first row that is significant
    and material, or None.
    """

    table: pl.DataFrame
    metric: str
    tested: int
    alpha: float
    total_delta: float = float("nan")
    sums: pl.DataFrame | None = None  # per snapshot: its shared hours' sums and the reweighted ones beside it (``_o``)
    windows: dict[str, dict[str, float]] | None = None  # the whole windows' sums, {"baseline": {sum: value}, ...}

    @property
    def worse(self) -> dict | None:
        if self.table.is_empty():
            return None
        hits = self.table.filter(pl.col("significant") & pl.col("material"))
        return hits.row(0, named=True) if hits.height else None

    def beside_of(self, snapshot_id: str) -> str | None:
        """The snapshot that served most of the labelled incident rows beside ``snapshot_id`` (where its traffic
        would go back to), or None."""
        if self.sums is None:
            return None
        others = self.sums.filter(pl.col(SNAPSHOT) != snapshot_id).sort("labeled", descending=True)
        return others[SNAPSHOT][0] if others.height else None

    def served_as_beside(self, snapshot_id: str, metric: str) -> tuple[float, float, float, int]:
        """``(baseline, incident, after)`` values of ``metric`` over the whole windows, ``after`` with the rows of
        ``snapshot_id`` in the shared hours served as the rows beside them were (their reweighted sums: what routing
        its traffic back would give, a prediction from the log alone), and the labelled rows replaced."""
        if self.sums is None or self.windows is None:
            raise ValueError("no snapshots served side by side")
        row = self.sums.filter(pl.col(SNAPSHOT) == snapshot_id)
        if row.is_empty():
            raise ValueError(f"snapshot {snapshot_id!r} did not serve beside another")
        inc = self.windows["incident"]
        after = {s: inc[s] - float(row[s][0]) + float(row[f"{s}_o"][0]) for s in SUMS}
        return (_metric_of(self.windows["baseline"], metric), _metric_of(inc, metric), _metric_of(after, metric),
                int(row["labeled"][0]))

    def to_dict(self) -> dict:
        return {"metric": self.metric, "tested": self.tested, "alpha": self.alpha, "total_delta": jsonable(self.total_delta),
                "worse": jsonable(self.worse),
                "table": records(self.table)}

    def __str__(self) -> str:
        if self.table.is_empty():
            return "no two snapshots served labelled rows side by side in the incident"
        lines = [f"snapshots served side by side, {self.metric} of each against the rows beside it in the same hours "
                 f"({self.tested} tested):"]
        for r in self.table.iter_rows(named=True):
            lines.append(f"  {r['snapshot_id']:<24} {fmt(r['value'])} vs {fmt(r['beside'])} beside it, share "
                         f"{fmt(r['share'], 2)} (baseline {fmt(r['baseline_share'], 2)}), z {fmt(r['z'], 1)}"
                         + (" (new)" if r["new"] else f", its excess in the baseline {fmt(r['baseline_excess'], 3)}")
                         + (" *" if r["significant"] and r["material"] else ""))
        return "\n".join(lines)



def _metric_of(sums: dict[str, float], metric: str) -> float:
    """``metric`` of one group's sums (a window's, or one with a snapshot's rows served otherwise)."""
    return float(metric_from_sums({s: np.array([sums[s]]) for s in SUMS}, metric)[0][0])


def _beside(cells: pl.DataFrame) -> pl.DataFrame:
    """Per snapshot: its sums in the hours where another served labelled rows too, and the others' sums in those
    hours reweighted to its own labelled rows hour by hour (``<sum>_o``)."""
    cells = cells.filter(pl.col("labeled") > 0)
    shared = cells.filter(pl.col(SNAPSHOT).n_unique().over(HOUR) > 1)
    shared = shared.filter(pl.len().over(SNAPSHOT) >= MIN_HOURS)  # side by side, not one handing over to the next
    shared = shared.filter(pl.col(SNAPSHOT).n_unique().over(HOUR) > 1)
    totals = shared.group_by(HOUR).agg(pl.col(s).sum().alias(f"{s}_all") for s in SUMS)
    weight = pl.col("labeled") / (pl.col("labeled_all") - pl.col("labeled"))
    return shared.join(totals, on=HOUR).group_by(SNAPSHOT).agg(
        *(pl.col(s).sum() for s in SUMS), *((weight * (pl.col(f"{s}_all") - pl.col(s))).sum().alias(f"{s}_o") for s in SUMS))


def _excess(own: pl.DataFrame, metric: str, suffix: str = "") -> tuple:
    """``(value, beside, excess, se, supported)`` of each snapshot's rows against the rows beside them."""
    a = {s: own[s + suffix].cast(pl.Float64).fill_null(0).to_numpy() for s in SUMS}
    o = {s: own[f"{s}_o{suffix}"].cast(pl.Float64).fill_null(0).to_numpy() for s in SUMS}
    va, sa = metric_from_sums(a, metric)
    vo, so = metric_from_sums(o, metric)
    excess = comparison_scale(metric, va) - comparison_scale(metric, vo)
    supported = ((a["labeled"] >= MIN_LABELED) & (counted_positives(a["positives"], a["pred_sum_labeled"]) >= MIN_POSITIVES)
                 & (o["labeled"] >= MIN_LABELED) & (counted_positives(o["positives"], o["pred_sum_labeled"]) >= MIN_POSITIVES)
                 & np.isfinite(excess))
    return va, vo, excess, np.hypot(sa, so), supported, a, o


def _cells(rows: pl.LazyFrame) -> pl.LazyFrame:
    return rows.group_by(PERIOD, pl.col(TS).dt.truncate("1h").alias(HOUR), SNAPSHOT).agg(sum_aggs())


def served_side_by_side(case: Case, baseline: Window, incident: Window, metric: str = "normalized_entropy",
                        alpha: float = 0.01, scheduler: object = None) -> ServedSide:
    """Compare each snapshot's rows with the rows other snapshots served in the same hours, in the incident and in the
    baseline (one pass over the two windows' rows, grouped by hour and snapshot; with ``scheduler``, one task per part
    of the log on a Dask cluster, their sums added on the client)."""
    empty = ServedSide(pl.DataFrame(schema={"snapshot_id": pl.String}), metric, 0, alpha)
    if not case.columns.snapshot or metric not in DIRECTION:
        return empty
    cells = collect_sums(case, _cells, [PERIOD, HOUR, SNAPSHOT], windows={"baseline": baseline, "incident": incident},
                         scheduler=scheduler)
    cells = cells.filter(pl.col(SNAPSHOT).is_not_null())
    period = {w: cells.filter(pl.col(PERIOD) == w) for w in ("baseline", "incident")}
    window = {w: rows.select(pl.col(s).sum().cast(pl.Float64) for s in SUMS).row(0, named=True) for w, rows in period.items()}
    inc = _beside(period["incident"])
    if inc.is_empty():
        return empty
    own = inc.join(_beside(period["baseline"]), on=SNAPSHOT, how="left", suffix="_b")
    own = own.join(period["baseline"].group_by(SNAPSHOT).agg(pl.col("labeled").sum().alias("_rows_b")),
                   on=SNAPSHOT, how="left").with_columns(pl.col("_rows_b").fill_null(0)).sort(SNAPSHOT)
    va, vo, excess, se, support, a, o = _excess(own, metric)
    _, _, excess_b, se_b, known_b, _, _ = _excess(own, metric, "_b")
    # a snapshot with too few rows beside others in the baseline (new in the incident) is taken to have served as well
    # as they did then (excess 0, no error): the change of its excess is then its excess
    excess_b, se_b = np.where(known_b, excess_b, 0.0), np.where(known_b, se_b, 0.0)
    d = DIRECTION[metric]
    change = excess - excess_b
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (change * d if d else np.abs(change)) / np.hypot(se, se_b)
    support &= np.isfinite(z)
    tested = int(support.sum())
    p = np.minimum(1.0, np.array([norm_sf(v) if np.isfinite(v) else 1.0 for v in z]) * (1 if d else 2) * max(tested, 1))
    # material: its rows against what they would have been with the baseline's excess over the rows beside them
    before = np.exp(np.log(vo) + excess_b) if metric in LOG_SCALE else vo + excess_b
    moved = served_move(o["pred_sum_labeled"], o["labeled"], a["pred_sum_labeled"], a["labeled"])
    is_material = [bool(ok) and material(metric, float(b), float(i), moved=float(m))
                   for ok, b, i, m in zip(support, before, va, moved, strict=True)]
    level = {w: comparison_scale(metric, _metric_of(window[w], metric)) for w in window}
    total = float(level["incident"] - level["baseline"])
    share = a["labeled"] / max(window["incident"]["labeled"], 1.0)
    toward = d or (np.sign(total) if np.isfinite(total) and total else 1.0)  # a two-sided metric: the way it moved
    with np.errstate(divide="ignore", invalid="ignore"):
        explained = share * change * toward / (total * toward) if np.isfinite(total) and total * toward > 0 else \
            np.full(len(share), np.nan)
    base_share = own["_rows_b"].cast(pl.Float64).to_numpy() / max(window["baseline"]["labeled"], 1.0)
    table = pl.DataFrame({
        "snapshot_id": own[SNAPSHOT], "share": share, "baseline_share": base_share, "value": va, "beside": vo,
        "baseline_excess": np.where(known_b, excess_b, np.nan), "z": z, "explained_share": explained, "p_value": p,
        "significant": support & (p < alpha), "material": is_material, "new": ~known_b, "_tested": support,
    }).filter(pl.col("_tested")).drop("_tested").with_columns(pl.col(pl.Float64).fill_nan(None))
    return ServedSide(table.sort("z", descending=True, nulls_last=True), metric, tested, alpha, total,
                      own.select(SNAPSHOT, *SUMS, *(f"{s}_o" for s in SUMS)), window)
