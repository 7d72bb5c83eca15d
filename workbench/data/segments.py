"""A regression confined to one traffic segment, for when the whole traffic shows none.

A segment holding a tenth of the traffic can collapse while the overall quality
stays within its noise. Every value of every slice column with at least
``min_share`` of the rows is tested on its own series:

* at its own grain (never finer than the case's: a segment holds a share of the traffic, so it may need longer
  periods to hold enough labelled rows), on every metric, by :func:`workbench.data.onset.detect_onset`;
* on its calibration ratio alone, on its clicks' counts (:func:`workbench.data.counts.detect_count_shift`), at each
  grain from the case's to its own:

  - below its own grain: a segment whose own grain is a day cannot show a collapse of two days, which the case's six
    hours can on fewer clicks a period (dev ``slice/collapse/13``), and periods expecting a few clicks each, too thin
    for the per-period fit, are counted, not dropped (dev ``slice/collapse/27``). NE and AUC are not tested there:
    they rest on normal approximations its few clicks do not support (at the case's hour a quiet segment's NE read
    robust z 6.4 against a threshold of 5.9, dev ``control/quiet/18``);
  - at its own grain too: the counts read a change the fit's day-to-day variance hides. That variance is estimated
    from what the best shift leaves, so a change that partly recovers leaves its own days apart and hides itself
    (outside test 4, ``i15``: the sidebar's calibration 0.93 -> 0.59 at robust z 5.0 against 6.1 by the fit, 7.2
    against 5.8 by its counts; on 399 dev controls the counts at the own grain added no false alarm).

A value under ``min_share`` (a beta client, a small market) is tested too, on its calibration's counts alone (the
exact law its few clicks support), at the grains from the case's to its own, when it has an own grain at all. These
values are many and each matters less, so they share ``MINORITY_ALPHA`` (a tenth) of the alpha among themselves,
and the segments over ``min_share`` the rest (either family takes the whole alpha when the other is empty): a
value's count raises no threshold of a larger segment's beyond a tenth of its alpha (about 0.03 sigma). Outside
test 6, ``i14``: a client holding 2.5 % of the traffic whose calibration went 0.95 -> 2.76 was never tested.

Every series is tested at ``alpha / m`` (Bonferroni over the ``m`` segment-and-grain series tested of its family,
the values over ``min_share`` or under it, on top of the detector's own Bonferroni over the metrics), so the chance that
a case with no regression alarms in *some* segment stays below ``alpha`` (family-wise,
0.001 by default: with the whole traffic's 0.001, a quiet case alarms anywhere with
probability at most 0.002, if the model holds).

At its own grain the fit's null is Gaussian, and the metrics of a small segment (a few positives a
period) have heavier tails, so a change point alone over-alarms. A segment therefore
stands only when a second, independent test agrees: the slice search
(:func:`workbench.data.slices.find_slices`, its own Bonferroni control over the whole
slice lattice) between the windows that onset implies must find that very segment
significant, its calibration oriented the way the segment's own series moved (oriented by the whole traffic, a
segment whose calibration rose within a traffic that drifted down is no slice); and a calibration regression must
also pass the exact test of its clicks (:func:`_exact_p`), since the slice search's scale is Gaussian too.

A value *new* to the log (its first row comes after the history a shift needs, ``min_before`` periods of the
case's grain: a new app version, A/B arm or market) has no series of its own before it, so nothing of its own to
shift from. It is compared with the traffic it joined, as the slice search compares it: its calibration on its
clicks' counts, on one series that is the rest of the traffic's until the value's first period and the value's own
from there (:func:`_joined`; only the calibration ratio: the model's predictions should match the label rate in
every segment, while NE and AUC differ between populations without anything broken). Its share is judged over the
rows since it appeared. Outside test 3, ``i15``: a version ramping to 35% of the traffic with a true click rate the
model did not know (calibration 0.67 in it, 1.03 before) read "no regression".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl

from workbench.case.columns import TS
from workbench.case.grain import GRAINS, choose_grain, grain_delta
from workbench.case.loader import Case
from workbench.data.counts import detect_count_shift
from workbench.data.onset import MIN_FIT_COUNT, WATCHED, Onset, detect_onset, min_before
from workbench.data.quality import POOL_SUMS, QualitySeries, quality_series
from workbench.data.slices import DIRECTION as SEARCHABLE
from workbench.data.slices import find_slices, slice_filter
from workbench.windows import Window, as_utc

if TYPE_CHECKING:
    from collections.abc import Callable

    from workbench.data.scan import LogScan

__all__ = ["SegmentOnset", "detect_segment_onset", "locate_in_segment"]

# the share of the segments' alpha spent on the values under ``min_share``, tested on their clicks' counts alone
MINORITY_ALPHA = 0.1


@dataclass(frozen=True, slots=True)
class SegmentOnset:
    """The segment (``column=value``) whose own series regressed, and its onset."""

    segment: str
    onset: Onset
    tested: int  # series tested: each segment at its own grain, and its calibration's counts there and at the finer grains
    alpha: float

    def to_dict(self) -> dict:
        return {"segment": self.segment, "tested": self.tested, "alpha": self.alpha, "onset": self.onset.to_dict()}

    def __str__(self) -> str:
        return f"in {self.segment} (1 of {self.tested} segment series tested, family-wise alpha {self.alpha}): {self.onset}"


def _segment_grain(table: pl.DataFrame, every: str) -> str | None:
    """A segment's own grain (:func:`workbench.case.grain.choose_grain` on its counts, a period testable with
    ``MIN_FIT_COUNT`` positives and negatives: the detector's own floor), never finer than the case's: a segment
    holds a share of the traffic, so its periods may need to be longer to hold enough labelled rows. A period's
    positives are the observed or, when more, the expected ones (``sum p``), as every grain is chosen: a segment whose
    clicks collapsed must not become untestable by its own collapse."""
    profile = table.select(pl.col("window").alias("period"), "rows", "labeled", "positives", "pred_sum_labeled")
    choice = choose_grain(profile, min_count=MIN_FIT_COUNT)
    if choice.grain is None:
        return None
    return choice.grain if GRAINS.index(choice.grain) >= GRAINS.index(every) else every


def _first_seen(table: pl.DataFrame, col: str, every: str) -> dict[str, datetime]:
    """The values of ``col`` first served after the history a shift needs (``min_before`` periods of ``every`` from
    the log's first period), each with its first period: the values new to the log (module docstring). A null is no
    value (a slice column that starts logging nulls made one, and sorting it beside the values raised)."""
    if table.is_empty():
        return {}
    step = grain_delta(every)
    since = table["window"].min() + step * min_before(step / timedelta(hours=1))  # type: ignore[operator]
    first = table.filter((pl.col("rows") > 0) & pl.col(col).is_not_null()).group_by(col).agg(pl.col("window").min())
    return dict(first.filter(pl.col("window") >= since).iter_rows())


def _joined(table: pl.DataFrame, col: str, value: str, since: datetime) -> pl.DataFrame:
    """One series for a value new to the log: the rest of the traffic's sums per period before ``since`` (the value's
    first period), the value's own from it (module docstring). Only what the count test reads: the sums, and the
    join rate that tells which periods are reliably labelled."""
    sums = ["rows", "labeled", *POOL_SUMS]
    rest = (table.filter(pl.col(col).ne_missing(value) & (pl.col("window") < since)).group_by("window").agg(pl.col(sums).sum())
            .with_columns((pl.col("labeled") / pl.col("rows")).alias("label_join_rate")))
    own = table.filter((pl.col(col) == value) & (pl.col("window") >= since)).select("window", *sums, "label_join_rate")
    return pl.concat([rest.select(own.columns), own], how="vertical_relaxed").sort("window")


def _count_test(series: QualitySeries, level: float) -> Onset:
    """A segment's calibration at and below its own grain: on its clicks' counts (:mod:`workbench.data.counts`)."""
    return detect_count_shift(series, alpha=level)


def _exact_p(table: pl.DataFrame, onset: Onset) -> float:
    """The exact p-value of a segment's calibration change between the onset's windows (``table``: its series).

    Given the clicks the two windows hold together, the incident's number of them is binomial with the incident's
    share of the clicks the model expects (``sum p``) when the calibration did not change (the conditional test of
    two Poisson rates). The detector's Gaussian scale over-states the evidence of a few clicks: a period with none of
    the 5 clicks it expects reads as 5.4 sigma on the log scale, while its chance is 0.7% (2.5 sigma); so a segment's
    calibration regression stands only when this exact test agrees, at the segment's level."""
    def counts(w: Window) -> tuple[float, float]:
        part = table.filter(w.contains("window"))
        return float(part["positives"].sum()), float(part["pred_sum_labeled"].sum())

    from scipy.special import bdtr, bdtrc  # binomial tails; scipy.stats would cost seconds to import

    (yb, eb), (yi, ei) = counts(onset.baseline), counts(onset.incident)
    if eb + ei <= 0:
        return 1.0
    share, k, n = ei / (eb + ei), round(yi), round(yb + yi)
    if onset.current_value > onset.baseline_value:  # the ratio rose: fewer clicks than the predictions expect
        return float(bdtr(k, n, share))
    return float(bdtrc(k - 1, n, share)) if k >= 1 else 1.0


def detect_segment_onset(case: Case, metrics: tuple[str, ...] = WATCHED, *, alpha: float = 0.001, min_share: float = 0.05,
                         columns: tuple[str, ...] | None = None, scan: LogScan | None = None,
                         until: datetime | str | None = None,
                         accept: Callable[[Onset], bool] | None = None) -> SegmentOnset | None:
    """The confirmed segment with the largest severity-to-threshold ratio, or None (see the module docstring).

    ``scan`` (:func:`workbench.data.scan.log_scan`) gives every segment's series without reading the log. ``until``
    reads only the rows served before that time (their labels as joined now), the slice search included: ``workbench
    guard`` asks what a run at that time could see (the scan covers the whole log and is not used). ``accept`` keeps
    only the segments whose onset it accepts, so a segment regressing for weeks does not hide one that starts now.

    >>> from workbench import open_case
    >>> detect_segment_onset(open_case("sample_data/cases/slice_shift")).segment
    'country=BR'
    >>> detect_segment_onset(open_case("sample_data/cases/control")) is None
    True
    """
    if case.grain.grain is None:
        return None
    every = case.grain.grain
    cols = case.slices if columns is None else columns
    until = None if until is None else as_utc(until)
    rows = None if until is None else pl.col(TS) < pl.lit(until)  # quality_series reads the log, not the scan, for rows
    finer = "calibration_ratio" in metrics  # the one metric whose thin periods have an exact law: their clicks' counts

    def own_grain(series: QualitySeries, level: float) -> Onset:
        return detect_onset(series, metrics, alpha=level, latest=False)  # the largest: its alpha is counted once

    candidates: list[tuple[str, QualitySeries, Callable[[QualitySeries, float], Onset]]] = []
    minority: list[tuple[str, QualitySeries, Callable[[QualitySeries, float], Onset]]] = []  # under min_share: counts
    for col in cols:
        series = quality_series(case, by=col, every=every, rows=rows, scan=scan)
        shares = series.table.group_by(col).agg(pl.col("rows").sum()).with_columns(pl.col("rows") / pl.col("rows").sum())
        by_grain: dict[str, list[tuple[str, Callable[[QualitySeries, float], Onset], bool]]] = {}  # bool: under min_share
        new = _first_seen(series.table, col, every) if finer else {}
        for value, since in sorted(new.items()):
            lifetime = series.table.filter(pl.col("window") >= since)
            if float(lifetime.filter(pl.col(col) == value)["rows"].sum()) >= min_share * float(lifetime["rows"].sum()):
                candidates.append((f"{col}={value}", QualitySeries(table=_joined(series.table, col, value, since),
                                                                   every=every, by=()), _count_test))
        for value, share in shares.filter(pl.col(col).is_not_null()).sort(col).iter_rows():
            small = share < min_share  # tested on its calibration's counts alone
            own = _segment_grain(series.table.filter(pl.col(col) == value), every)
            if own is None or (small and not finer):
                continue
            if not small:
                by_grain.setdefault(own, []).append((value, own_grain, False))
            for grain in GRAINS[GRAINS.index(every):GRAINS.index(own) + 1] if finer else ():
                by_grain.setdefault(grain, []).append((value, _count_test, small))
        for grain, values in sorted(by_grain.items(), key=lambda kv: GRAINS.index(kv[0])):
            table = series.table if grain == every else quality_series(case, by=col, every=grain, rows=rows, scan=scan).table
            for value, test, small in values:
                sub = table.filter(pl.col(col) == value).drop(col)
                (minority if small else candidates).append((f"{col}={value}", QualitySeries(table=sub, every=grain, by=()), test))
    if not candidates and not minority:
        return None
    spent = MINORITY_ALPHA if candidates and minority else float(bool(minority))
    level = {False: alpha * (1 - spent) / max(len(candidates), 1), True: alpha * spent / max(len(minority), 1)}
    found = [(segment, series, test(series, level[small]), small)
             for small, family in ((False, candidates), (True, minority)) for segment, series, test in family]
    for segment, series, onset, small in sorted((f for f in found if f[2].detected and (accept is None or accept(f[2]))),
                                                key=lambda f: -f[2].severity / f[2].threshold):
        if onset.metric == "calibration_ratio" and _exact_p(series.table, onset) > level[small]:
            continue
        metric = onset.metric if onset.metric in SEARCHABLE else "normalized_entropy"  # AUC is not a sum
        incident = onset.incident if until is None else Window(onset.incident.start, min(onset.incident.end, until))
        # the last period may reach past until; a calibration is oriented the way the segment's own series moved
        search = find_slices(case, onset.baseline, incident, metric=metric, direction=onset.direction)
        confirmed = search.table.filter(pl.col("significant") & (pl.col("slice") == segment))
        if confirmed.height:
            return SegmentOnset(segment=segment, onset=onset, tested=len(candidates) + len(minority), alpha=alpha)
    return None


def locate_in_segment(case: Case, whole: Onset, metrics: tuple[str, ...] = WATCHED, *, alpha: float = 0.001) -> SegmentOnset | None:
    """Where a regression the whole traffic shows, but one segment holds alone, starts and ends, on that segment's own
    series; None when it is not confined to one segment or that series does not show it overlapping ``whole``.

    On the whole traffic a segment's regression is diluted by the rest, which did not move: the scan still finds it,
    but its onset and end are placed where the diluted profile peaks, which a few noisy periods of the rest can move
    by days. The segment's own series carries the undiluted change, so its change point is where the incident is. The
    segment is the slice search's top slice between ``whole``'s windows when it is confined (significant, a minority
    of the traffic, the rest did not regress: :func:`workbench.data.slices.find_slices`); its series is tested at its
    own grain (never finer than the case's) by :func:`workbench.data.onset.detect_onset` at ``alpha``. Only the timing
    is taken from it: whether quality regressed was decided on the whole traffic.
    """
    if not whole.detected or whole.grain is None or not case.slices:
        return None
    metric = whole.metric if whole.metric in SEARCHABLE else "normalized_entropy"
    search = find_slices(case, whole.baseline, whole.incident, metric=metric)
    if search.top is None or not search.confined:
        return None
    segment = search.top["slice"]
    rows = slice_filter(segment)
    table = quality_series(case, every=whole.grain, rows=rows).table
    grain = _segment_grain(table, whole.grain)
    if grain is None:
        return None
    if grain != whole.grain:
        table = quality_series(case, every=grain, rows=rows).table
    found = detect_onset(QualitySeries(table=table, every=grain, by=()), metrics, alpha=alpha,
                         latest=whole.earlier is not None)  # the same regression as the whole traffic's answer
    if not found.detected or not found.incident.overlaps(whole.incident):
        return None
    return SegmentOnset(segment=segment, onset=found, tested=1, alpha=alpha)
