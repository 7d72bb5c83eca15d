"""Fused, mergeable passes over the serving log, so a diagnosis reads the data a fixed number of times instead of once
per check.

Every check used to make its own pass (quality per period, per segment, per window
and slice cell, feature profiles, label and calibration sums, row samples). Here they
are three reads:

1. **The whole log** (:func:`log_scan` -> :class:`LogScan`): the quality partial
   (:func:`workbench.data.quality.quality_partial`: sums per period x score bin x
   calibration bin) of every period of the case's grain, the same per value of each
   slice column (what :mod:`workbench.data.segments` reads), and optionally a
   fixed-size uniform **hash sample** of the whole log, every column: the rows whose
   row hash (:func:`row_hash`, of the timestamp and the prediction) ranks lowest. An
   investigation reads only the narrow columns here (``sample_rows=0``): the onset,
   and so the windows, come from the quality partials.
2. **The windows' sample** (:func:`sample_windows`): the same hash sample drawn from
   the rows of the baseline, incident and placebo windows only. Any window's row sample
   (feature edges, quantiles, staleness, relations, the model checks' rows) is the
   sample's rows inside it, with no further read.
3. **The windows** (:func:`window_scan` -> :class:`WindowScan`): for the baseline,
   incident and placebo windows at once, the quality partial per window, the
   mergeable sums per window x slice cell (the slice search and deltas, the label
   shift; category counts are their marginals) and every feature's profile on bin
   edges fixed from the baseline's rows of the sample
   (:func:`workbench.data.drift._reference`, :func:`workbench.data.drift._profile_exprs`).

Each piece is ``partial(LazyFrame) -> small DataFrame`` and a merge of the partials of
disjoint parts gives the partial of their union, so the same code streams the whole log
in process (:func:`log_scan`, :func:`window_scan`) or maps over partitions on a cluster
(:mod:`workbench.data._dask`): :func:`log_partial` / :func:`merge_log` and
:func:`window_partial` / :func:`merge_windows`.

What is exact and what is not:

* counts (rows, labeled, positives, nulls, ``x <= edge`` per bin edge, category
  counts) are **exact**: a merge equals one pass bit for bit;
* float sums (prediction, log-loss and feature moments) are exact **up to the
  order of floating-point addition**: relative differences of about ``1e-15`` per
  addition, ~``1e-12`` over a log (a float32 feature's moments sum in float32:
  ~``1e-6``); every figure reported is rounded far above that;
* the hash sample is **equal by construction** (whole log or windows): the ``k`` lowest hashes of a union
  are the ``k`` lowest of the parts' own lowest ``k`` (ties in the 64-bit hash are
  broken arbitrarily; they need two rows with the same timestamp *and* prediction
  plus a collision at the cut). What it estimates carries sampling error: a window
  holding ``n`` sample rows places a quantile edge within about ``0.5 / sqrt(n)``
  of its probability (0.35% at 20k rows), and the per-window analyses
  (:mod:`workbench.data.drift`) draw their own hash samples today, so their
  quantiles, staleness and relation figures, and the edges of the JS/PSI bins,
  differ from the scans' within that tolerance. Histogram counts *on the fixed
  edges* are exact either way.

The analysis functions accept the scans (``scan=``) through the accessors here
(:meth:`LogScan.period_partial`, :meth:`WindowScan.cells`, :meth:`WindowScan.sums`,
:meth:`WindowScan.quality_parts`, :meth:`WindowScan.drift_inputs`), which return
exactly the intermediate tables those functions build today, or None when the scan
does not cover the request (other windows, features or bins): then they compute as
before.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta

import polars as pl

from workbench.case.columns import LABEL, PREDICTION, TS
from workbench.case.grain import GRAINS, grain_delta
from workbench.case.loader import Case
from workbench.data._dask import Part, Reader, map_parts, parts, reader
from workbench.data._frames import PERIOD, unsigned_to_int64, window_frames, window_rows
from workbench.data._sums import SUMS as CELL_SUMS
from workbench.data._sums import sum_aggs
from workbench.data.drift import BINS, _placebo, _profile_exprs, _Reference, _reference, _sorted
from workbench.data.drift import SAMPLE_ROWS as DRIFT_SAMPLE_ROWS
from workbench.data.quality import EB, SB, merge_partials, quality_partial
from workbench.windows import Window

__all__ = ["HASH", "SAMPLE_ROWS", "LogPlan", "LogScan", "WindowPlan", "WindowScan", "analysis_windows", "disjoint", "log_partial",
           "log_plan", "log_scan", "merge_log", "merge_windows", "row_hash", "sample_windows", "window_partial", "window_plan",
           "window_scan"]

HASH = "_hash"
SEED = 17
SAMPLE_ROWS = 200_000  # rows of the pass-1 sample (fewer on wide logs: SAMPLE_CELLS)
SAMPLE_CELLS = 50_000_000  # values the sample may hold (400 MB of floats): 50k rows at 1,000 columns
MIN_SAMPLE = 20_000
WINDOW = "window"  # the period column of pass 1, as in workbench.data.quality.quality_series


def row_hash() -> pl.Expr:
    """A 64-bit hash of (timestamp, prediction): the same row gets the same hash in any part, on any worker.

    The timestamp alone (:func:`workbench.data._frames.hash_sample`) ties whenever two
    rows share a microsecond; with the served probability as well, two rows tie only if
    they are the same impression logged twice. Deterministic for a given polars version
    (every worker must run the same one, as a Dask cluster's workers do when built from
    one environment).
    """
    return pl.struct(TS, PREDICTION).hash(SEED)


def _threshold(rows: int, k: int) -> int | None:
    """A hash cut keeping about ``1.1 k + 10 sqrt(k)`` of ``rows`` rows before the exact bottom-``k``.

    The cut lets each part drop almost every row before ranking (a bottom-``k`` of all
    rows is slow); it is the same for every part, so the sample stays mergeable. Fewer
    than ``k`` survivors is a 10-sigma event, and :func:`log_scan` redoes the sample
    without the cut if it happens.
    """
    if rows <= k:
        return None
    q = min(1.0, (1.1 * k + 10 * math.sqrt(k)) / rows)
    return None if q >= 1.0 else int(q * 2.0**64)


# ---------------------------------------------------------------- pass 1: the whole log
@dataclass(frozen=True, slots=True)
class LogPlan:
    """What pass 1 fixes before reading: the same for every part, so partials merge."""

    every: str
    slices: tuple[str, ...]
    columns: tuple[str, ...]  # the sample's columns (every canonical column)
    sample_rows: int
    threshold: int | None  # the hash cut (see _threshold); None keeps every row before ranking
    windows: tuple[Window, ...] = ()  # the sample is drawn from these (disjoint) windows' rows; () is the whole log


def log_plan(case: Case, *, every: str | None = None, sample_rows: int = SAMPLE_ROWS, segments: bool = True,
             threshold: bool = True) -> LogPlan:
    """Pass 1's plan for ``case``: its grain (or hourly), its slice columns (none without ``segments``), a sample
    sized to its width (none when ``sample_rows`` is 0)."""
    columns = tuple(case.predictions.collect_schema().names())
    k = min(sample_rows, max(MIN_SAMPLE, SAMPLE_CELLS // max(len(columns), 1))) if sample_rows > 0 else 0
    return LogPlan(every=every or case.grain.grain or "1h", slices=tuple(case.slices) if segments else (), columns=columns,
                   sample_rows=k, threshold=_threshold(case.rows, k) if threshold and k else None)


@dataclass(frozen=True, slots=True)
class LogScan:
    """Pass 1 over the whole log (or a part of it: the partial has the same shape).

    ``quality``: the quality partial per ``window`` (period of ``every``) x score bin x
    calibration bin; ``segments[col]``: the same per ``window`` x value of slice column
    ``col``; ``sample``: up to ``plan.sample_rows`` rows of every column with the lowest
    row hash (column ``_hash``), sorted by it; ``rows``: rows read. Counts exact, sums
    up to float addition order, the sample equal by construction (module docstring).
    """

    plan: LogPlan
    quality: pl.DataFrame
    segments: Mapping[str, pl.DataFrame]
    sample: pl.DataFrame
    rows: int
    drawn_from: int | None = None  # rows the sample was drawn from (its windows' rows, :func:`sample_windows`); None: ``rows``

    @property
    def every(self) -> str:
        return self.plan.every

    def covers(self, window: Window) -> bool:
        """Whether the sample was drawn from every row of ``window`` (always, for a sample of the whole log)."""
        return not self.plan.windows or any(w.start <= window.start and window.end <= w.end for w in self.plan.windows)

    @property
    def complete(self) -> bool:
        """Whether the sample holds every row it was drawn from (a small log, or small windows)."""
        return self.sample.height >= (self.rows if self.drawn_from is None else self.drawn_from)

    def period_partial(self, every: str, by: tuple[str, ...] = ()) -> pl.DataFrame | None:
        """The quality partial per ``window`` of ``every`` (and ``by``, at most one slice column) x score bin x
        calibration bin, exactly as :func:`workbench.data.quality.quality_series` collects it; None when
        ``every`` is finer than the scan's period or does not nest in it (then read the log)."""
        if len(by) > 1 or (by and by[0] not in self.segments):
            return None
        table = self.segments[by[0]] if by else self.quality
        if every == self.every:
            return table
        if every not in GRAINS or self.every not in GRAINS or grain_delta(every) < grain_delta(self.every):
            return None
        if grain_delta(every) % grain_delta(self.every) != timedelta(0):
            return None
        coarse = table.with_columns(pl.col(WINDOW).dt.truncate(every))
        return merge_partials([coarse], [WINDOW, *by])

    def repeated(self) -> float | None:
        """The share of the sample's rows that repeat another of its rows in every column; None without a sample.

        Copies of a row share its hash, so the sample (the rows of lowest hash) holds all of a row's copies or none:
        the share is an unbiased estimate of the log's (or the windows') share of rows written more than once.
        Distinct impressions rarely agree to the microsecond, the served probability, the label and every feature (a
        log of coarse timestamps, rounded predictions and few columns can); a log written twice (a retried export, a
        partition loaded again) makes every count twice what was served and every sampling error too small by
        ``sqrt 2``.
        """
        if self.sample.is_empty():
            return None
        return float(self.sample.drop(HASH).is_duplicated().sum()) / self.sample.height

    def window_sample(self, window: Window, rows: int | None = None, columns: list[str] | None = None) -> pl.DataFrame:
        """The sample's rows inside ``window`` with the lowest hashes (at most ``rows``): a uniform sample of it."""
        out = self.sample.filter(window.contains(TS))
        out = out if rows is None else out.head(rows)
        return out.select(columns) if columns is not None else out.drop(HASH)

    def to_dict(self) -> dict:
        return {"every": self.every, "rows": self.rows, "periods": self.quality[WINDOW].n_unique() if self.quality.height else 0,
                "segments": {c: t[c].n_unique() for c, t in self.segments.items()}, "sample_rows": self.sample.height}

    def __str__(self) -> str:
        return (f"log scan: {self.rows:,} rows per {self.every}, {len(self.segments)} slice column(s), "
                f"a {self.sample.height:,}-row hash sample")


def _sample_query(lf: pl.LazyFrame, plan: LogPlan) -> pl.LazyFrame:
    # The cut is a predicate on the raw columns, so polars pushes it into the scan: only the survivors are decoded
    # and cast (a filter on a computed hash column would run after every row's casts). The windows' time filter comes
    # after it, on the survivors: a row-range slice or a time filter first kept the cut out of the scan, and every
    # column of every window row was decoded (100M rows: 85 s for the sample and pass 2, 66 s for the old two passes).
    rows = lf if plan.threshold is None else lf.filter(row_hash() < pl.lit(plan.threshold, pl.UInt64))
    if plan.windows:
        rows = rows.filter(_inside(plan.windows))
    return rows.select(*plan.columns, row_hash().alias(HASH)).bottom_k(plan.sample_rows, by=HASH)


def _inside(windows: Iterable[Window]) -> pl.Expr:
    return pl.any_horizontal([w.contains(TS) for w in windows])


def collect(queries: list[pl.LazyFrame], *, together: bool = False) -> list[pl.DataFrame]:
    """Collect a pass's queries, streaming: one after the other, or side by side (``pl.collect_all``) when ``together``.

    Side by side they do not share the scan. Pass 1's two queries over the whole log side by side peaked at 16.7 GB
    on a 100M-row log (2.5 GB one after the other, and faster); pass 2's per-window queries side by side were a
    quarter faster for 1 GB more (3.4 GB), so pass 2 runs them together.
    """
    return pl.collect_all(queries, engine="streaming") if together else [q.collect(engine="streaming") for q in queries]


def log_queries(lf: pl.LazyFrame, plan: LogPlan) -> list[pl.LazyFrame]:
    """Pass 1's queries over ``lf`` (see :func:`collect`): quality, one per slice column, the sample."""
    period = pl.col(TS).dt.truncate(plan.every).alias(WINDOW)
    sample = [_sample_query(lf, plan)] if plan.sample_rows else []
    return [quality_partial(lf, [period]), *(quality_partial(lf, [period, c]) for c in plan.slices), *sample]


def _log_result(plan: LogPlan, out: list[pl.DataFrame]) -> LogScan:
    quality, *segments = out
    if plan.sample_rows:
        *segments, sample = segments
    else:
        sample = pl.DataFrame(schema=dict.fromkeys(plan.columns, pl.Null) | {HASH: pl.UInt64})
    rows = int(quality["rows"].sum()) if quality.height else 0
    return LogScan(plan=plan, quality=quality, segments=dict(zip(plan.slices, segments, strict=True)),
                   sample=sample.sort(HASH), rows=rows)


def log_partial(lf: pl.LazyFrame, plan: LogPlan) -> LogScan:
    """Pass 1 over ``lf`` (the whole log or one part of it), streaming."""
    return _log_result(plan, collect(log_queries(lf, plan)))


def merge_log(parts: list[LogScan]) -> LogScan:
    """The pass-1 result of the union of disjoint parts: sums add, samples concatenate and are cut by hash rank."""
    if not parts:
        raise ValueError("merge_log needs at least one part")
    plan = parts[0].plan
    if len(parts) == 1:
        return parts[0]
    quality = merge_partials([p.quality for p in parts], [WINDOW])
    segments = {c: merge_partials([p.segments[c] for p in parts], [WINDOW, c]) for c in plan.slices}
    sample = pl.concat([p.sample for p in parts], how="vertical_relaxed").bottom_k(plan.sample_rows, by=HASH).sort(HASH) \
        if plan.sample_rows else parts[0].sample
    return LogScan(plan=plan, quality=quality.sort(WINDOW, SB, EB), segments=segments, sample=sample,
                   rows=sum(p.rows for p in parts))


def log_scan(case: Case, *, every: str | None = None, sample_rows: int = SAMPLE_ROWS, segments: bool = True,
             scheduler: object = None) -> LogScan:
    """Pass 1 over the whole serving log of ``case``: one streaming query (or, with ``scheduler``, one task per part
    on a Dask cluster: :func:`workbench.data._dask.log_scan`).

    The per-segment partials are the costly part (a partial per period x value x score bin holds about as
    many groups as a busy log has rows in a period), and only :func:`workbench.data.segments.detect_segment_onset`
    reads them, when the whole traffic showed nothing: ``segments=False`` leaves them out (an investigation asks
    for them in a second, narrow pass over the timestamp, prediction, label and slice columns only when needed,
    with ``sample_rows=0``).

    >>> from workbench import open_case
    >>> scan = log_scan(open_case("sample_data/cases/control"))
    >>> scan.rows == scan.sample.height  # a small case: the sample holds every row
    True
    """
    if scheduler is not None:
        return _cluster_log_scan(case, scheduler, every=every, sample_rows=sample_rows, segments=segments)
    plan = log_plan(case, every=every, sample_rows=sample_rows, segments=segments)
    out = log_partial(case.predictions, plan)
    if plan.threshold is not None and out.sample.height < min(plan.sample_rows, out.rows):  # the cut kept too few (~never)
        full = log_plan(case, every=every, sample_rows=sample_rows, segments=segments, threshold=False)
        sample = _sample_query(case.predictions, full).collect(engine="streaming").sort(HASH)
        out = LogScan(plan=out.plan, quality=out.quality, segments=out.segments, sample=sample, rows=out.rows)
    return out


def disjoint(windows: Iterable[Window]) -> tuple[Window, ...]:
    """The union of ``windows`` as disjoint windows in time order (overlapping or touching ones merged)."""
    out: list[Window] = []
    for w in sorted(windows, key=lambda w: w.start):
        if out and w.start <= out[-1].end:
            out[-1] = Window(out[-1].start, max(out[-1].end, w.end))
        else:
            out.append(w)
    return tuple(out)


def sample_windows(case: Case, windows: Iterable[Window], log: LogScan, *, sample_rows: int = SAMPLE_ROWS,
                   scheduler: object = None) -> LogScan:
    """``log`` (pass 1) with its row sample drawn from the rows of ``windows`` only: the lowest row hashes among them.

    Once the onset has fixed the windows, every model-side check and every bin edge reads rows of the baseline,
    incident and placebo windows only, so pass 1 reads the whole log's narrow columns (timestamp, prediction, label:
    the quality partials, from which the onset comes) and this read draws the sample, every column, from the windows'
    rows: the same number of sample rows falls in them (3.6x as many per window on a 3-day log with 13-hour
    windows). Each window's rows of the sample are still a uniform sample of it, by hash rank
    (:meth:`LogScan.window_sample`), and the sample of parts still merges by hash rank (:func:`merge_log`). The hash
    cut, sized to the windows' rows, is pushed into the parquet scan, and the time filter runs on its survivors: only
    they are decoded in every column; a narrow count of the windows' rows rides along. On a Dask cluster: one task
    per part that reaches a window.
    """
    spans = disjoint(windows)
    inside = sum(window_rows(case, w) for w in spans)
    k = log_plan(case, sample_rows=sample_rows).sample_rows
    plan = LogPlan(every=log.every, slices=(), columns=tuple(case.predictions.collect_schema().names()), sample_rows=k,
                   threshold=_threshold(inside, k), windows=spans)
    if scheduler is not None:
        sample, drawn_from = _cluster_sample(case, plan, scheduler)
    else:
        sample, drawn_from = _window_sample(case, plan)
    return LogScan(plan=plan, quality=log.quality, segments=log.segments, sample=sample, rows=log.rows, drawn_from=drawn_from)


def _window_sample(case: Case, plan: LogPlan) -> tuple[pl.DataFrame, int]:
    """The sample of ``plan.windows``'s rows and how many rows they hold, in process."""
    count = int(case.predictions.select(TS).filter(_inside(plan.windows)).select(pl.len()).collect(engine="streaming").item())
    sample = _sample_query(case.predictions, plan).collect(engine="streaming")
    if plan.threshold is not None and sample.height < min(plan.sample_rows, count):  # the cut kept too few (~never)
        sample = _sample_query(case.predictions, replace(plan, threshold=None)).collect(engine="streaming")
    return sample.sort(HASH), count


# ---------------------------------------------------------------- pass 2: the windows
@dataclass(frozen=True, slots=True)
class WindowPlan:
    """What pass 2 fixes before reading: the windows, the slice columns and the features' bin edges."""

    windows: Mapping[str, Window]
    slices: tuple[str, ...]
    reference: _Reference  # edges, scale band and spread from the baseline's rows of the pass-1 sample
    bins: int
    sample_rows: int  # baseline rows of the pass-1 sample that fixed the edges


def analysis_windows(case: Case, baseline: Window, incident: Window, *, placebo: bool = True) -> dict[str, Window]:
    """The windows the analyses compare: ``baseline``, ``incident`` and, when the log reaches back far enough, the
    ``placebo`` (:func:`workbench.data.drift._placebo`: the baseline moved back by the baseline-to-incident lag)."""
    out = {"baseline": baseline, "incident": incident}
    pw = _placebo(case, baseline, incident) if placebo else None
    if pw is not None:
        out["placebo"] = pw
    return out


def window_plan(case: Case, windows: Mapping[str, Window], log: LogScan, *, bins: int | None = None,
                sample_rows: int | None = None) -> WindowPlan:
    """Pass 2's plan: bin edges from the ``baseline`` window's rows of the pass-1 sample (the first ``sample_rows`` by
    hash, as many as :func:`workbench.data.drift.feature_drift` samples), as :func:`~workbench.data.drift._reference`
    fixes them."""
    bins = bins or BINS
    sample_rows = sample_rows or DRIFT_SAMPLE_ROWS
    feats = tuple(case.features)
    frame_b = log.window_sample(windows["baseline"], sample_rows, list(feats)) if "baseline" in windows else pl.DataFrame()
    ref = _reference(_sorted(frame_b, feats), feats, bins)
    return WindowPlan(windows=dict(windows), slices=tuple(case.slices), reference=ref, bins=bins, sample_rows=sample_rows)


@dataclass(frozen=True, slots=True)
class WindowScan:
    """Pass 2 over the windows (or a part of the log: same shape).

    ``quality``: the quality partial per window (column ``_period``: the window's name) x
    score bin x calibration bin; ``cell_sums``: the sums of :data:`workbench.data._sums.SUMS`
    per window x cross-product cell of the slice columns (what
    :func:`workbench.data.slices.slice_cells` collects); ``profiles``: one row per window
    of the features' profile aggregations (:func:`workbench.data.drift._profile_exprs`
    on the plan's edges); ``samples``: each window's rows of the pass-1 sample (by hash
    rank; empty for a partial). Counts exact; sums up to float addition order.
    """

    plan: WindowPlan
    quality: pl.DataFrame
    cell_sums: pl.DataFrame
    profiles: pl.DataFrame
    samples: Mapping[str, pl.DataFrame] = field(default_factory=dict)

    @property
    def windows(self) -> Mapping[str, Window]:
        return self.plan.windows

    def _names(self, wanted: Mapping[str, Window]) -> dict[str, str] | None:
        """Our window name for each wanted tag, or None when a wanted window is not one of ours."""
        ours = {w: name for name, w in self.windows.items()}
        names = {tag: ours.get(w) for tag, w in wanted.items()}
        return None if any(v is None for v in names.values()) else names  # type: ignore[return-value]

    def _retag(self, table: pl.DataFrame, names: dict[str, str]) -> pl.DataFrame:
        back = {ours: tag for tag, ours in names.items()}
        return table.filter(pl.col(PERIOD).is_in(list(back))).with_columns(pl.col(PERIOD).replace_strict(back))

    def cells(self, windows: Mapping[str, Window], columns: tuple[str, ...]) -> pl.DataFrame | None:
        """Sums per window (tagged by the keys of ``windows``) and cell of ``columns``, as
        :func:`workbench.data.slices.slice_cells` returns them; None if a window is not scanned."""
        names = self._names(windows)
        if names is None or not set(columns) <= set(self.plan.slices):
            return None
        cells = self._retag(self.cell_sums, names)
        return cells.group_by(PERIOD, *columns).agg(pl.col(s).sum() for s in CELL_SUMS)

    def sums(self, windows: Mapping[str, Window]) -> pl.DataFrame | None:
        """Sums per window (what :func:`workbench.data.labels.label_shift` collects); None if a window is not scanned."""
        return self.cells(windows, ())

    def quality_parts(self, windows: Mapping[str, Window]) -> dict[str, pl.DataFrame] | None:
        """Each window's quality partial (score bin x calibration bin, 10 equal-width calibration bins), keyed by
        the tags of ``windows``: what :func:`workbench.data.calibration.calibration_shift` reads."""
        names = self._names(windows)
        if names is None:
            return None
        return {tag: self.quality.filter(pl.col(PERIOD) == ours).drop(PERIOD) for tag, ours in names.items()}

    def drift_inputs(self, baseline: Window, incident: Window, placebo: Window | None, features: tuple[str, ...],
                     categorical: tuple[str, ...], bins: int, sample_rows: int, stale_rows: int
                     ) -> tuple[_Reference, list[dict], dict[str, list[pl.DataFrame]], pl.DataFrame, pl.DataFrame] | None:
        """What :func:`workbench.data.drift.feature_drift` computes before its statistics: the reference (edges), the
        profiles of baseline, incident [and placebo] as dicts, the category counts per window, the baseline's sample
        rows that fixed the edges and the incident's (the first ``stale_rows`` by hash). None unless the scan holds
        exactly these windows, features, categorical columns and bins."""
        wanted = {"b": baseline, "i": incident} | ({"p": placebo} if placebo is not None else {})
        names = self._names(wanted)
        ref = self.plan.reference
        if (names is None or ref.features != features or self.plan.bins != bins or self.plan.sample_rows != sample_rows
                or not set(names.values()) <= set(self.samples) or not set(categorical) <= set(self.plan.slices)):
            return None
        rows = {r[PERIOD]: {k: v for k, v in r.items() if k != PERIOD} for r in self.profiles.iter_rows(named=True)}
        if any(ours not in rows for ours in names.values()):
            return None
        counts = self.category_counts(list(wanted.values()), categorical)
        assert counts is not None  # the windows and columns were checked above
        cols = [*features, LABEL]
        # the lowest hashes make the sample; time order makes the rows those the analyses subsample (as a read gives them)
        frame_b = self.samples[names["b"]].head(sample_rows).sort(TS, maintain_order=True).select(cols)
        frame_i = self.samples[names["i"]].head(stale_rows).sort(TS, maintain_order=True).select(cols)
        return ref, [rows[names[t]] for t in wanted], counts, frame_b, frame_i

    def category_counts(self, windows: list[Window], columns: tuple[str, ...]) -> dict[str, list[pl.DataFrame]] | None:
        """Rows per value of each categorical column in each window (marginals of the cells), in the form
        :func:`workbench.data.drift._categorical_rows` reads: ``{column: [frame per window]}`` with ``column, len``."""
        names = self._names({str(k): w for k, w in enumerate(windows)})
        if names is None or not set(columns) <= set(self.plan.slices):
            return None
        out: dict[str, list[pl.DataFrame]] = {}
        for c in columns:
            frames = []
            for k in range(len(windows)):
                part = self.cell_sums.filter(pl.col(PERIOD) == names[str(k)]).group_by(c).agg(pl.col("rows").sum().alias("len"))
                frames.append(part.select(pl.col(c).cast(pl.String), pl.col("len").cast(pl.Int64)))
            out[c] = frames
        return out

    def to_dict(self) -> dict:
        return {"windows": {k: w.to_dict() for k, w in self.windows.items()}, "cells": self.cell_sums.height,
                "features": len(self.plan.reference.features),
                "samples": {k: v.height for k, v in self.samples.items()}}

    def __str__(self) -> str:
        ws = ", ".join(f"{k} {w}" for k, w in self.windows.items())
        return f"window scan: {ws}; {self.cell_sums.height} slice cells, {len(self.plan.reference.features)} feature profiles"


def window_queries(frames: Mapping[str, pl.LazyFrame], plan: WindowPlan) -> list[pl.LazyFrame]:
    """Pass 2's queries over each window's rows (``frames``: name -> rows; see :func:`collect`): the quality
    partial per window, the sums per window x slice cell, and one profile row per window."""
    tagged = pl.concat([fr.with_columns(pl.lit(name).alias(PERIOD)) for name, fr in frames.items()])
    profile = _profile_exprs(plan.reference)  # built once for every window: ~26 expressions per feature
    return [quality_partial(tagged, [PERIOD]), tagged.group_by(PERIOD, *plan.slices).agg(sum_aggs()),
            *(fr.select(pl.lit(name).alias(PERIOD), *profile) for name, fr in frames.items())]


def _window_result(plan: WindowPlan, out: list[pl.DataFrame], samples: Mapping[str, pl.DataFrame]) -> WindowScan:
    quality, cells, *profiles = out
    prof = pl.concat([unsigned_to_int64(p) for p in profiles], how="vertical_relaxed")
    return WindowScan(plan=plan, quality=quality, cell_sums=cells, profiles=prof, samples=dict(samples))


def window_partial(frames: Mapping[str, pl.LazyFrame], plan: WindowPlan) -> WindowScan:
    """Pass 2 over the rows of each window in ``frames`` (of the whole log or of one part), streaming."""
    return _window_result(plan, collect(window_queries(frames, plan), together=True), {})


def merge_windows(parts: list[WindowScan], samples: Mapping[str, pl.DataFrame] | None = None) -> WindowScan:
    """The pass-2 result of the union of disjoint parts: every piece is a count or a sum, so they add."""
    if not parts:
        raise ValueError("merge_windows needs at least one part")
    plan = parts[0].plan
    quality = merge_partials([p.quality for p in parts], [PERIOD])
    cells = pl.concat([p.cell_sums for p in parts]).group_by(PERIOD, *plan.slices).agg(pl.col(s).sum() for s in CELL_SUMS)
    profiles = pl.concat([p.profiles for p in parts], how="vertical_relaxed").group_by(PERIOD, maintain_order=True).agg(
        pl.all().sum())
    return WindowScan(plan=plan, quality=quality, cell_sums=cells, profiles=profiles,
                      samples=dict(samples) if samples is not None else dict(parts[0].samples))


def window_samples(log: LogScan, windows: Mapping[str, Window]) -> dict[str, pl.DataFrame]:
    """Each window's rows of the pass-1 sample, by hash rank: uniform samples of the windows, no read."""
    return {name: log.sample.filter(w.contains(TS)) for name, w in windows.items()}


def window_scan(case: Case, windows: Mapping[str, Window], log: LogScan, *, bins: int | None = None,
                sample_rows: int | None = None, scheduler: object = None) -> WindowScan:
    """Pass 2 over the ``windows`` of ``case`` (typically :func:`analysis_windows`): one read of their
    rows, each window read as its row range when the log is in time order (:func:`workbench.data._frames.window_frames`,
    row counts checked, else the log is filtered), or, with ``scheduler``, one task per part on a Dask cluster.

    >>> from workbench import open_case, detect_onset
    >>> case = open_case("sample_data/cases/slice_shift")
    >>> onset = detect_onset(case)
    >>> ws = window_scan(case, analysis_windows(case, onset.baseline, onset.incident), log_scan(case))
    >>> sorted(ws.windows)
    ['baseline', 'incident', 'placebo']
    """
    plan = window_plan(case, windows, log, bins=bins, sample_rows=sample_rows)
    if scheduler is not None:
        return _cluster_window_scan(case, plan, log, scheduler)
    samples = window_samples(log, windows)
    names = list(windows)
    scan = None
    for sliced in (True, False):
        frames, is_sliced = window_frames(case, list(windows.values()), sliced=sliced)
        scan = _window_result(plan, collect(window_queries(dict(zip(names, frames, strict=True)), plan), together=True), samples)
        if not is_sliced:
            break
        got = dict(scan.cell_sums.group_by(PERIOD).agg(pl.col("rows").sum()).iter_rows())
        if all(got.get(name, 0) == window_rows(case, w) for name, w in windows.items()):
            break
    assert scan is not None
    return scan



# ---------------------------------------------------------------- the same passes on a Dask cluster (workbench.data._dask)
def _log_task(part: Part, read: Reader, plan: LogPlan) -> LogScan:
    return _log_result(plan, collect(log_queries(read.frame(part), plan)))


def _window_task(part: Part, read: Reader, plan: WindowPlan) -> WindowScan:
    lf = read.frame(part)
    frames = {name: lf.filter(w.contains(TS)) for name, w in plan.windows.items()}
    return _window_result(plan, collect(window_queries(frames, plan), together=True), {})


def _cluster_log_scan(case: Case, scheduler: object, *, every: str | None = None, sample_rows: int | None = None,
             segments: bool = True) -> LogScan:
    """:func:`workbench.data.scan.log_scan` with one task per part on the cluster, merged here."""
    ps = parts(case)
    read = reader(case)
    rows = SAMPLE_ROWS if sample_rows is None else sample_rows
    plan = log_plan(case, every=every, sample_rows=rows, segments=segments)
    out = merge_log(map_parts(scheduler, _log_task, ps, read=read, plan=plan))
    if plan.threshold is not None and out.sample.height < min(plan.sample_rows, out.rows):  # the hash cut kept too few (~never)
        full = log_plan(case, every=every, sample_rows=rows, segments=segments, threshold=False)
        again = merge_log(map_parts(scheduler, _log_task, ps, read=read, plan=full))
        out = LogScan(plan=plan, quality=out.quality, segments=out.segments, sample=again.sample, rows=out.rows)
    return out


def _sample_task(part: Part, read: Reader, plan: LogPlan) -> tuple[pl.DataFrame, int]:
    lf = read.frame(part)
    count, sample = collect([lf.select(TS).filter(_inside(plan.windows)).select(pl.len()), _sample_query(lf, plan)])
    return sample, int(count.item())


def _cluster_sample(case: Case, plan: LogPlan, scheduler: object) -> tuple[pl.DataFrame, int]:
    """:func:`_window_sample` with one task per part that reaches a window, merged here by hash rank."""
    ps = [p for p in parts(case) if any(p.reaches(w.start, w.end) for w in plan.windows)]
    if not ps:
        return _window_sample(case, plan)  # no row in any window: the in-process empty sample
    out = map_parts(scheduler, _sample_task, ps, read=reader(case), plan=plan)
    count = sum(n for _, n in out)
    sample = pl.concat([s for s, _ in out], how="vertical_relaxed").bottom_k(plan.sample_rows, by=HASH)
    if plan.threshold is not None and sample.height < min(plan.sample_rows, count):  # the hash cut kept too few (~never)
        return _cluster_sample(case, replace(plan, threshold=None), scheduler)
    return sample.sort(HASH), count


def _cluster_window_scan(case: Case, plan: WindowPlan, log: LogScan, scheduler: object) -> WindowScan:
    """:func:`workbench.data.scan.window_scan` with one task per part that reaches a window, merged here."""
    ps = [p for p in parts(case) if any(p.reaches(w.start, w.end) for w in plan.windows.values())]
    samples = window_samples(log, plan.windows)
    if not ps:  # no row in any window: the in-process empty result
        empty = pl.LazyFrame(schema=case.predictions.collect_schema())
        return _window_result(plan, collect(window_queries(dict.fromkeys(plan.windows, empty), plan)), samples)
    return merge_windows(map_parts(scheduler, _window_task, ps, read=reader(case), plan=plan), samples)

