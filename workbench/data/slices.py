"""Which traffic slices regressed: per-slice deltas and a search for where the *change* concentrates.

Slices are the values of the case's slice columns (level 1, ``country=BR``) and
of pairs of them (level 2, ``country=BR & platform=ios``). One grouped pass
computes mergeable sums per (period, cross-product cell); every slice and its
complement are sums and differences of cells.

The search adapts SliceLine (Sagadeeva & Boehm, *SliceLine: Fast,
Linear-Algebra-based Slice Finding for ML Model Debugging*, SIGMOD 2021), which
enumerates a lattice of conjunctions of ``column=value`` predicates and scores
each slice by its error and size under a minimum support. Peer slice finders
(and SliceLine itself) look for where the error is *high*; here the error is the
*change* of a metric between a baseline and an incident period. The objective
maximised is the **regression explained by the slice**::

    score(S) = share(S) * d * (delta(S) - delta(not S))

where ``delta`` is the metric's incident-minus-baseline change (log scale for
ratios), ``share`` the slice's share of incident labeled rows, and ``d`` the
metric's bad direction (+1 for NE: an increase is a regression; for a metric that
regresses either way, such as the calibration ratio, the way the whole traffic moved). Since the total
change is roughly the share-weighted mix of the slice's and the rest's changes,
``score(S) ~ delta(total) - delta(not S)``: how much of the regression disappears
when ``S`` is set aside. A global regression scores ~0 everywhere; a regression
confined to ``S`` scores ``delta(total)``.

Significance control: ``z = d * (delta(S) - delta(not S)) / SE`` with sampling
standard errors of the four (slice, rest) x (baseline, incident) metrics; a slice
is significant when its one-sided p-value, Bonferroni-corrected for the number of
slices tested, is below ``alpha``. Slices with fewer than ``MIN_LABELED`` labeled
rows or ``MIN_POSITIVES`` positives in either period are not tested (SliceLine's
minimum support), so tiny slices cannot win on noise, except a slice *new* in the incident (under a tenth of
``MIN_LABELED`` labelled baseline rows: a new A/B arm, app version or market), which is compared with the traffic
it joined (its baseline is the rest's, column ``new``); the positives are the observed or, when more, the
expected ones (``sum p``), so a slice whose clicks collapsed stays testable. The calibration ratio's
error is the binomial error at the rate the model expects
(:func:`workbench.metrics.calibration_log_se`, the detector's too). Lattice rule: when a
level-2 slice explains at least 90% of a parent's score from at most 90% of its
rows, the parent ranks after it (the regression is more specific than the parent);
a child holding nearly all the parent's rows is the same segment in more words, and
the parent, the smaller description, stays first. The lattice is enumerated
completely (levels 1-2 over a few low-cardinality columns are small), so
SliceLine's score upper-bound pruning is not needed.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from workbench._render import fmt, jsonable, records
from workbench.case.loader import Case
from workbench.data._frames import PERIOD, check_columns
from workbench.data._sums import MIN_LABELED, SUM_METRICS, SUMS, window_cells
from workbench.data.onset import material, served_move
from workbench.errors import WorkbenchError
from workbench.metrics import comparison_scale, counted_positives, metric_from_sums, norm_sf
from workbench.windows import Window

if TYPE_CHECKING:
    from workbench.data.scan import WindowScan

__all__ = ["SliceDeltas", "SliceSearch", "find_slices", "slice_cells", "slice_deltas", "slice_filter"]

DIRECTION = {"normalized_entropy": 1, "log_loss": 1, "calibration_ratio": 0, "label_rate": 0, "prediction_mean": 0}
MIN_POSITIVES = 5  # and MIN_LABELED labelled rows (workbench.data._sums): a slice's support in each period
NEW_BELOW = 0.1 * MIN_LABELED  # labelled baseline rows under which a slice is new in the incident (module docstring)
MINORITY = 0.5  # a segment holding half the traffic or more is not "confined": it is most of the traffic
PARENT_SHARE = 0.9


def _columns(case: Case, columns: tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    cols = case.slices if columns is None else check_columns(case, columns, "slice", case.slices)
    if not cols:
        raise WorkbenchError(case.root, "the case has no slice columns.",
                             'map them in workbench.toml: [columns] slices = ["country", "platform"]')
    return tuple(cols)


def slice_cells(case: Case, baseline: Window, incident: Window, columns: tuple[str, ...]) -> pl.DataFrame:
    """Mergeable sums per period (``baseline``/``incident``) and cross-product cell of ``columns``."""
    return window_cells(case, baseline, incident, columns)


def _label(columns: tuple[str, ...]) -> pl.Expr:
    parts = [pl.lit(f"{c}=") + pl.col(c).fill_null("null") for c in columns]
    return pl.concat_str(parts, separator=" & ")


def _slices(cells: pl.DataFrame, columns: tuple[str, ...], pairs: bool) -> pl.DataFrame:
    """Sums per slice and period, wide: ``<sum>_b`` / ``<sum>_i``, one row per slice."""
    groups: list[tuple[str, ...]] = [(c,) for c in columns]
    if pairs:
        groups += list(itertools.combinations(columns, 2))
    parts = []
    for g in groups:
        agg = cells.group_by(PERIOD, *g).agg(pl.col(s).sum() for s in SUMS)
        parts.append(agg.select(_label(g).alias("slice"), pl.lit(len(g)).alias("level"),
                                pl.lit(" & ".join(g)).alias("columns"), PERIOD, *SUMS))
    long = pl.concat(parts)
    wide = long.filter(pl.col(PERIOD) == "baseline").drop(PERIOD).join(
        long.filter(pl.col(PERIOD) == "incident").drop(PERIOD), on=["slice", "level", "columns"], how="full",
        suffix="_i", coalesce=True)
    return wide.rename({s: f"{s}_b" for s in SUMS}).with_columns(pl.col("^.*_[bi]$").fill_null(0))


def _totals(cells: pl.DataFrame) -> dict[str, dict[str, float]]:
    t = cells.group_by(PERIOD).agg(pl.col(s).sum() for s in SUMS)
    out = {p: dict.fromkeys(SUMS, 0.0) for p in ("baseline", "incident")}
    for row in t.iter_rows(named=True):
        out[row[PERIOD]] = {s: float(row[s]) for s in SUMS}
    return out


def _arrays(wide: pl.DataFrame, suffix: str) -> dict[str, np.ndarray]:
    return {s: wide[f"{s}_{suffix}"].cast(pl.Float64).to_numpy() for s in SUMS}



# ---------------------------------------------------------------- deltas
@dataclass(frozen=True, slots=True)
class SliceDeltas:
    """Baseline-vs-incident quality per slice (levels 1 and 2).

    ``table``: ``slice``, ``level``, ``columns``, ``rows_baseline``, ``rows_incident``,
    ``share_baseline``, ``share_incident`` and, for each metric in NE, log loss,
    calibration ratio, label rate and prediction mean, ``<metric>_baseline``,
    ``<metric>_incident``, ``<metric>_delta``.
    """

    table: pl.DataFrame
    baseline: Window
    incident: Window

    def to_dict(self) -> dict:
        return {"baseline": self.baseline.to_dict(), "incident": self.incident.to_dict(), "table": records(self.table)}

    def __str__(self) -> str:
        top = self.table.sort("normalized_entropy_delta", descending=True, nulls_last=True).head(5)
        lines = [f"slice deltas, {self.table.height} slices, baseline {self.baseline} vs incident {self.incident}; largest NE rises:"]
        lines += [f"  {r['slice']:<40} NE {fmt(r['normalized_entropy_baseline'])} -> {fmt(r['normalized_entropy_incident'])}"
                  f"  share {fmt(r['share_incident'], 2)}" for r in top.iter_rows(named=True)]
        return "\n".join(lines)


def slice_deltas(case: Case, baseline: Window, incident: Window, columns: tuple[str, ...] | list[str] | None = None,
                 pairs: bool = True, scan: WindowScan | None = None) -> SliceDeltas:
    """Quality per slice value (and pair of values) in the baseline and the incident window, with deltas.

    ``scan`` (:func:`workbench.data.scan.window_scan` over these windows) supplies the cells without reading the log."""
    cols = _columns(case, columns)
    cells = scan.cells({"baseline": baseline, "incident": incident}, cols) if scan is not None else None
    if cells is None:
        cells = slice_cells(case, baseline, incident, cols)
    wide = _slices(cells, cols, pairs)
    tot = _totals(cells)
    b, i = _arrays(wide, "b"), _arrays(wide, "i")
    out = wide.select("slice", "level", "columns", pl.col("rows_b").alias("rows_baseline"), pl.col("rows_i").alias("rows_incident"))
    out = out.with_columns((pl.col("rows_baseline") / max(tot["baseline"]["rows"], 1)).alias("share_baseline"),
                           (pl.col("rows_incident") / max(tot["incident"]["rows"], 1)).alias("share_incident"))
    extra = []
    for m in SUM_METRICS:
        vb, _ = metric_from_sums(b, m)
        vi, _ = metric_from_sums(i, m)
        extra += [pl.Series(f"{m}_baseline", vb), pl.Series(f"{m}_incident", vi), pl.Series(f"{m}_delta", vi - vb)]
    out = out.with_columns(extra).with_columns(pl.col(pl.Float64).fill_nan(None))
    return SliceDeltas(table=out.sort("level", "slice"), baseline=baseline, incident=incident)


# ---------------------------------------------------------------- search
@dataclass(frozen=True, slots=True)
class SliceSearch:
    """Slices ranked by the regression they explain (see the module docstring).

    ``table``: ``slice``, ``level``, ``share``, ``baseline_value``, ``incident_value``,
    ``delta``, ``rest_delta``, ``score``, ``z``, ``p_value`` (Bonferroni-adjusted),
    ``significant``, ``explained_share`` (score / total regression), ``new``, ``volume_ratio``
    (:func:`_volume_ratio`). Significant slices come first. ``confined`` says whether the top slice holds the
    regression alone: it is significant, a minority of the traffic (``share`` below
    ``MINORITY``) and the rest of the traffic did not regress: its change is below the
    one-sided ``alpha`` quantile (``rest_z``) or below the detector's materiality floor
    (:func:`workbench.data.onset.material`); for a metric that regresses either way, a rest that moved the other
    way regressed too. ``counter``: for such a metric, the segment that moved most the other way (:func:`_counter`),
    or None.
    """

    table: pl.DataFrame
    metric: str
    baseline: Window
    incident: Window
    total_delta: float
    tested: int
    alpha: float
    confined: bool
    rest_z: float
    counter: dict | None = None

    @property
    def top(self) -> dict | None:
        """The first significant slice as a dict, or None."""
        if self.table.is_empty() or not self.table["significant"][0]:
            return None
        return self.table.row(0, named=True)

    def to_dict(self) -> dict:
        return {"metric": self.metric, "baseline": self.baseline.to_dict(), "incident": self.incident.to_dict(),
                "total_delta": jsonable(self.total_delta), "tested": self.tested, "alpha": self.alpha,
                "top": jsonable(self.top), "confined": self.confined, "rest_z": jsonable(self.rest_z),
                "counter": jsonable(self.counter),
                "table": records(self.table)}

    def __str__(self) -> str:
        head = f"slice search on {self.metric} (total change {self.total_delta:+.4f}, {self.tested} slices tested)"
        top = self.top
        if top is None:
            return head + ": no slice concentrates the change significantly"
        lines = [head + ":"]
        for r in self.table.filter(pl.col("significant")).head(5).iter_rows(named=True):
            lines.append(f"  {r['slice']:<40} {fmt(r['baseline_value'])} -> {fmt(r['incident_value'])}, share {fmt(r['share'], 2)}, "
                         f"explains {fmt(r['explained_share'], 2)}, z {fmt(r['z'], 1)}")
        lines.append(f"  {'confined to' if self.confined else 'not confined to'} {top['slice']} (rest z {fmt(self.rest_z, 1)})")
        if self.counter is not None:
            c = self.counter
            lines.append(f"  moved the other way: {c['slice']} {fmt(c['baseline_value'])} -> {fmt(c['incident_value'])}, "
                         f"share {fmt(c['share'], 2)}")
        return "\n".join(lines)


def find_slices(case: Case, baseline: Window, incident: Window, metric: str = "normalized_entropy", max_level: int = 2,
                k: int = 5, alpha: float = 0.01, columns: tuple[str, ...] | list[str] | None = None,
                scan: WindowScan | None = None, direction: int | None = None) -> SliceSearch:
    """Search the slice lattice (up to ``max_level``) for where the change of ``metric`` concentrates.

    Returns the ``k`` best slices by explained regression (significant first);
    see the module docstring for the objective and the significance control. ``scan``
    (:func:`workbench.data.scan.window_scan` over these windows) supplies the cells without reading the log.
    ``direction`` (+1 up, -1 down) orients a metric that regresses either way when the way is known beforehand (a
    segment's own series said which way it moved), instead of the way the whole traffic moved: a small segment whose
    calibration rose x2.8 within a traffic that drifted 4 % down is a rise (outside test 6, ``i14``).

    >>> from workbench import open_case
    >>> from workbench import detect_onset
    >>> case = open_case("sample_data/cases/slice_shift")
    >>> onset = detect_onset(case)
    >>> find_slices(case, onset.baseline, onset.incident).top["slice"]
    'country=BR'
    """
    if metric not in DIRECTION:
        raise WorkbenchError("find_slices", f"unknown metric '{metric}'.", f"use one of {list(DIRECTION)}.")
    if max_level not in (1, 2):
        raise WorkbenchError("find_slices", f"max_level={max_level} is not supported.", "use 1 or 2.")
    cols = _columns(case, columns)
    cells = scan.cells({"baseline": baseline, "incident": incident}, cols) if scan is not None else None
    if cells is None:
        cells = slice_cells(case, baseline, incident, cols)
    wide = _slices(cells, cols, pairs=max_level == 2 and len(cols) > 1)
    tot = _totals(cells)
    b, i = _arrays(wide, "b"), _arrays(wide, "i")
    rb = {s: tot["baseline"][s] - b[s] for s in SUMS}
    ri = {s: tot["incident"][s] - i[s] for s in SUMS}
    d = DIRECTION[metric]
    vb, sb = metric_from_sums(b, metric)
    vi, si = metric_from_sums(i, metric)
    wb, swb = metric_from_sums(rb, metric)
    wi, swi = metric_from_sums(ri, metric)
    tb, _ = metric_from_sums({s: np.array([tot["baseline"][s]]) for s in SUMS}, metric)
    ti, _ = metric_from_sums({s: np.array([tot["incident"][s]]) for s in SUMS}, metric)
    # a segment new in the incident (too few baseline rows to read it there: a new A/B arm, app version or market) is
    # compared with the traffic it joined: its baseline is the rest's, so its difference is its incident value
    # against the rest's, with the errors of those two
    enough_b = (b["labeled"] >= MIN_LABELED) & (counted_positives(b["positives"], b["pred_sum_labeled"]) >= MIN_POSITIVES)
    new = ~enough_b & (b["labeled"] < NEW_BELOW) & np.isfinite(wb)
    vb, sb = np.where(new, wb, vb), np.where(new, 0.0, sb)
    swb_diff = np.where(new, 0.0, swb)  # the rest's baseline cancels from a new slice's difference (not from the rest's own z)
    with np.errstate(invalid="ignore"):  # a slice without clicks reads log 0 on both sides (untested: left out below)
        delta_s = comparison_scale(metric, vi) - comparison_scale(metric, vb)
        delta_r = comparison_scale(metric, wi) - comparison_scale(metric, wb)
    total = float((comparison_scale(metric, ti) - comparison_scale(metric, tb))[0])
    size_col = "rows" if metric == "prediction_mean" else "labeled"
    share = i[size_col] / max(tot["incident"][size_col], 1.0)
    # a metric that regresses either way (the calibration ratio) is oriented by the way the whole traffic moved: the
    # slice that holds the change moved further that way than the rest. Orienting by |diff| let the complement of the
    # slice that collapsed win (a country whose ratio held differs from a rest that holds the collapse).
    d = d or direction or (int(np.sign(total)) if math.isfinite(total) else 0)  # no clicks anywhere: no way, nor a slice
    diff = delta_s - delta_r
    oriented = diff * d if d else np.abs(diff)
    se = np.sqrt(sb**2 + si**2 + swb_diff**2 + swi**2)
    with np.errstate(divide="ignore", invalid="ignore"):  # an untested slice's error can be 0 (left out below)
        z = oriented / se
        own_zs = (delta_s * d if d else np.abs(delta_s)) / np.sqrt(sb**2 + si**2)
        rest_zs = (delta_r * d if d else np.abs(delta_r)) / np.sqrt(swb**2 + swi**2)
    # support counts the positives the model expects where that is more than were observed: a slice whose clicks
    # collapsed (one left of twenty expected) must stay testable, it is the slice that holds the change
    support = ((enough_b | new) & (i["labeled"] >= MIN_LABELED)
               & (counted_positives(i["positives"], i["pred_sum_labeled"]) >= MIN_POSITIVES)
               & (rb["labeled"] >= MIN_LABELED) & (ri["labeled"] >= MIN_LABELED) & np.isfinite(z))
    tested = int(support.sum())
    p_one = np.array([norm_sf(v) if np.isfinite(v) else 1.0 for v in z])
    p_adj = np.minimum(1.0, p_one * (1 if DIRECTION[metric] else 2) * max(tested, 1))  # the orientation was read off the data
    score = share * oriented
    oriented_total = total * d if d else abs(total)
    table = wide.select("slice", "level").with_columns(
        pl.Series("share", share), pl.Series("baseline_value", vb), pl.Series("incident_value", vi),
        pl.Series("delta", vi - vb), pl.Series("rest_delta", wi - wb), pl.Series("score", score), pl.Series("z", z),
        pl.Series("p_value", p_adj), pl.Series("significant", support & (p_adj < alpha)),
        pl.Series("explained_share", score / oriented_total if oriented_total > 0 else np.full(len(score), np.nan)),
        pl.Series("_rest_z", rest_zs),
        pl.Series("_rest_b", wb), pl.Series("_rest_i", wi),
        pl.Series("_rest_moved", served_move(rb["pred_sum_labeled"], rb["labeled"], ri["pred_sum_labeled"], ri["labeled"])),
        pl.Series("new", new), pl.Series("_tested", support),
        pl.Series("volume_ratio", _volume_ratio(b["rows"], rb["rows"], i["rows"], ri["rows"])),
        pl.Series("_own_z", own_zs),
        pl.Series("_own_moved", served_move(b["pred_sum_labeled"], b["labeled"], i["pred_sum_labeled"], i["labeled"])),
    ).filter(pl.col("_tested")).with_columns(pl.col(pl.Float64).fill_nan(None))
    table = _demote_parents(table)
    table = table.sort(["significant", "_demoted", "score"], descending=[True, False, True], nulls_last=True)
    rest_z = float(table["_rest_z"][0]) if table.height and table["_rest_z"][0] is not None else math.nan
    # confined: the top slice is significant, a minority of the traffic, and the rest did not regress: its change is
    # not both significant and material (on millions of rows a mix effect of 1% is significant; it is no regression).
    # A metric that regresses either way has regressed in the rest when it moved the other way, too
    two_sided = not DIRECTION[metric]
    rest_regressed = bool(table.height and (abs(rest_z) if two_sided else rest_z) >= NormalDist().inv_cdf(1 - alpha / (1 + two_sided))
                          and material(metric, _value(table["_rest_b"][0]), _value(table["_rest_i"][0]),
                                       moved=_value(table["_rest_moved"][0])))
    confined = bool(table.height and table["significant"][0] and table["share"][0] < MINORITY and not rest_regressed)
    counter = _counter(table, metric, alpha, tested) if two_sided and table.height and table["significant"][0] else None
    return SliceSearch(table=table.drop("_rest_z", "_rest_b", "_rest_i", "_rest_moved", "_tested", "_demoted", "_own_z",
                                        "_own_moved").head(k),
                       metric=metric, baseline=baseline, incident=incident, total_delta=total, tested=tested, alpha=alpha,
                       confined=confined, rest_z=rest_z, counter=counter)


def _volume_ratio(slice_b, rest_b, slice_i, rest_i) -> np.ndarray:
    """How many times more rows the slice served against the rest of the traffic in the incident than in the baseline
    (the odds of its share of the rows): traffic that joined a segment (bots, a new source or placement) raises it, a
    pipeline that broke on the segment's own rows does not. Window lengths and the whole traffic's own rise cancel."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.asarray(slice_i, dtype=float) / rest_i) / (np.asarray(slice_b, dtype=float) / rest_b)


def _counter(table: pl.DataFrame, metric: str, alpha: float, tested: int) -> dict | None:
    """The segment that moved most the other way, for a metric that regresses either way, or None.

    Two segments whose calibration moved in opposite directions (one country's ratio 1.0 → 0.6, another's 1.0 → 1.7)
    both regressed, and can cancel on the whole traffic: the rows of the two were mixed up (a swapped mapping), or a
    per-segment change went both ways. The search is oriented by the whole traffic's move (or the ``direction``
    given), so the other one scores below zero. It counts when its *own* change (against its own baseline, not
    against the rest: the complement of the top slice differs from it without moving) is significant, two-sided and
    Bonferroni-corrected like the search, and material, and when it neither contains the top slice nor lies inside
    it.
    """
    top = set(table["slice"][0].split(" & "))
    crit = NormalDist().inv_cdf(1 - alpha / (2 * max(tested, 1)))
    best = None
    for row in table.filter(pl.col("_own_z") <= -crit).iter_rows(named=True):
        parts = set(row["slice"].split(" & "))
        if parts <= top or top <= parts or not material(metric, _value(row["baseline_value"]),
                                                         _value(row["incident_value"]), moved=_value(row["_own_moved"])):
            continue
        if best is None or row["_own_z"] < best["_own_z"]:
            best = row
    if best is None:
        return None
    return {k: v for k, v in best.items() if not k.startswith("_")}


def _demote_parents(table: pl.DataFrame) -> pl.DataFrame:
    """Mark level-1 slices that a significant, more specific child explains almost entirely (``PARENT_SHARE`` of the
    parent's score from at most ``PARENT_SHARE`` of its rows). A child that holds nearly all the parent's rows
    (``country=AU & device=tablet`` where 96% of AU is on tablets) describes the same rows with one more term: the
    parent, the smaller description, stays first."""
    scores = dict(zip(table["slice"], table["score"], strict=True))
    shares = dict(zip(table["slice"], table["share"], strict=True))
    demoted = set()
    for row in table.filter((pl.col("level") == 2) & pl.col("significant")).iter_rows(named=True):
        for parent in row["slice"].split(" & "):
            ps, pshare = scores.get(parent), shares.get(parent)
            if (ps is not None and ps > 0 and row["score"] >= PARENT_SHARE * ps and pshare is not None
                    and row["share"] <= PARENT_SHARE * pshare):
                demoted.add(parent)
    return table.with_columns(pl.col("slice").is_in(list(demoted)).alias("_demoted"))


def _value(v: float | None) -> float:
    return math.nan if v is None else float(v)


def slice_filter(description: str) -> pl.Expr:
    """The rows of a slice as a polars predicate: ``"country=BR"`` or ``"country=BR & platform=ios"`` (values compared
    as strings, as the slice cells group them)."""
    parts = [part.partition("=") for part in description.split(" & ")]
    return pl.all_horizontal(pl.col(column.strip()).cast(pl.String) == value.strip() for column, _, value in parts)
