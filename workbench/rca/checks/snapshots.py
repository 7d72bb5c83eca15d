"""Model-side checks: the snapshot near the onset, its diff, its validation, its activations.

The snapshot suspect is the diff's first bad snapshot when it started serving
between two periods of the grain (``NEAR`` hours at least) before the onset and
the end of the incident window (the diff does not depend on where the onset was
located, which is least certain for weak signals and more often late than
early), or one the diff flags that started serving within ``NEAR`` hours of
the onset (or one period of a coarser grain), or with a model any that started serving that near (outside test 6,
``i07``: a broken hotfix served a quarter of the rows from the onset, unflagged, while the next day's refresh, diffed
against it, read as the alarm); with a model, also a snapshot the
diff flags that was serving at the onset, however long before it started, when
the swap counterfactual replaces it (it did not serve most of the baseline): the
swap bounds what it can account for (:func:`model_side`), so its timing need not (held-back snapshot/zeroed_rows/1000120, draw S: a flagged
snapshot started serving 2 h 56 min before an onset located at a 15-minute grain,
outside the two hours, and no cause was named); when none is flagged, one that
started serving that near the onset. Of several, the diff says which changed and
the clock which came first, not which hurt: with a model, the suspect is the one
whose own change, scored against its predecessor on the incident's labelled rows,
raised the loss most (:func:`~workbench.model.rescore.snapshot_loss`); without one,
the one published nearest the onset. Timing alone is weak evidence (with a
refresh every few hours one lands near any onset by chance), so its strength
comes from what the snapshot did: an alarming diff, a failed validation, and
above all the swap counterfactual (re-scoring the incident rows with the
baseline's snapshot recovers the quality).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl

from workbench.errors import NotEnoughData
from workbench.rca import _strength as S
from workbench.rca import plotspec
from workbench.rca.checks._common import confined_segment, slice_metric
from workbench.rca.evidence import Candidate, Evidence

if TYPE_CHECKING:
    from workbench.case.snapshots import Snapshot
    from workbench.rca.context import Context

__all__ = ["activation_trace", "model_side", "served_beside", "snapshot_validation", "suspect"]


NEAR = timedelta(hours=2)
HARM_ROWS = 5_000  # labelled incident rows each suspect's own change is scored on (_harm)
TIMING_ONLY = 0.1  # a publish time near the onset alone: with refreshes every few hours, one lands near any onset


def _timeline(ctx: Context):
    from workbench.model.diff import snapshot_timeline

    return ctx.cached("snapshot_timeline", lambda: snapshot_timeline(ctx.case))


def _near(ctx: Context, periods: int = 1) -> timedelta:
    """How far from the onset a publish still counts as near it: ``NEAR``, or ``periods`` periods of the grain when
    longer (the onset is only known to the period). A snapshot the diff flags counts from two periods before the
    onset: the scan sees a change once its periods show it, so at a coarse grain with few clicks a period the change
    only partly covers can pass unflagged (on 329 detected dev incidents, seeds 0-5 and 15-23, the onset came more
    than a period late in 8 %, more than a period early in 1.5 %)."""
    from workbench.case.grain import grain_delta

    grain = ctx.onset.grain
    return max(NEAR, periods * grain_delta(grain)) if grain else NEAR


def suspect(ctx: Context) -> Snapshot | None:
    """The snapshot to examine (see the module docstring), or None."""
    onset = ctx.onset_time
    if onset is None:
        return None
    near_by, flagged_since = _near(ctx), _near(ctx, 2)
    timeline = _timeline(ctx)
    alarms = set(timeline.table.filter("alarm")["snapshot_id"].to_list())
    near = [s for s in ctx.case.snapshots if abs(started(ctx, s) - onset) <= near_by]
    before = [s for s in ctx.case.snapshots if s.published_at <= onset]
    serving = before[-1] if before and before[-1].snapshot_id in alarms and ctx.has("model") else None
    if serving is not None and serving.snapshot_id not in getattr(_swap(ctx), "served", ()):
        serving = None  # the swap would not replace it (it served the baseline too): nothing would bound it
    pool = [s for s in ctx.case.snapshots if (s.snapshot_id == timeline.first_bad and onset - flagged_since <= s.published_at
                                             < ctx.incident.end) or (s in near and s.snapshot_id in alarms)
            or s is serving or (s in near and ctx.has("model"))] or near
    served = _served(ctx)
    if served:  # the log names each row's snapshot: one that served none of the incident's rows is no suspect
        pool = [s for s in pool if s.snapshot_id in served] or [s for s in near if s.snapshot_id in served]
    if len(pool) > 1 and ctx.has("model"):  # ask the model which change hurt these rows
        return max(pool, key=lambda s: -math.inf if math.isnan(h := _harm(ctx, s)) else h)
    return min(pool, key=lambda s: abs(started(ctx, s) - onset)) if pool else None


def _log_rows(ctx: Context) -> tuple[set[str], dict[str, datetime]]:
    """With a snapshot column (``[columns] snapshot``): the snapshots of the index that served the incident's sampled
    rows, and of those that served none of the rows just before the incident (its ``_near`` span; the baseline's when
    that span holds none), the first incident row each served. Empty when the log does not name them, or names none
    the index holds. The rows just before, not the whole baseline: a snapshot rolled back and later re-deployed served
    some of the baseline, long before the onset its return caused (outside test 6, ``i16``: re-applied 37 h after its
    publish and 30 h after its rollback, it read "no snapshot published near the onset"); and a baseline of the same
    hours a day before ends hours before the incident, while a refresh published between them was serving already.
    That span is read whole from the log, not from the sample: a canary on 1 % of the rows would hold a couple of
    sampled rows there, and missing by chance it would "start" at the onset."""
    from workbench.case.columns import SNAPSHOT, TS
    from workbench.data._frames import PERIOD, collect_windows
    from workbench.rca.checks._common import window_rows
    from workbench.windows import Window

    def compute() -> tuple[set[str], dict[str, datetime]]:
        if not ctx.case.columns.snapshot:
            return set(), {}
        base, inc = window_rows(ctx)
        known = {s.snapshot_id for s in ctx.case.snapshots}
        served = set(inc[SNAPSHOT].drop_nulls().cast(pl.String).unique().to_list()) & known
        if not served:
            return set(), {}
        span = Window(ctx.incident.start - _near(ctx), ctx.incident.start)
        last = collect_windows(ctx.case, {"last": span}, lambda rows: rows.group_by(PERIOD, pl.col(SNAPSHOT).cast(pl.String))
                               .agg(pl.len().alias("rows")))
        before = set((last if last.height else base)[SNAPSHOT].drop_nulls().cast(pl.String).unique().to_list())
        first = (inc.filter(pl.col(SNAPSHOT).cast(pl.String).is_in(sorted(served - before)))
                 .group_by(pl.col(SNAPSHOT).cast(pl.String)).agg(pl.col(TS).min()))
        return served, dict(zip(first[SNAPSHOT].to_list(), first[TS].to_list(), strict=True))

    return ctx.cached("snapshots_in_log", compute)


def _served(ctx: Context) -> set[str]:
    return _log_rows(ctx)[0]


def started(ctx: Context, snap: Snapshot) -> datetime:
    """When ``snap`` started serving: its first row in the incident when the log names each row's snapshot and it served
    none of the rows just before the incident (:func:`_log_rows`; a pin back to an old snapshot publishes nothing:
    outside test 3, an old snapshot re-pinned at 02:00 served every incident row while the refresh published at 02:03
    served none, and the refresh was named), else its publish time in the index."""
    return _log_rows(ctx)[1].get(snap.snapshot_id, snap.published_at)


def _harm(ctx: Context, snap: Snapshot) -> float:
    """How much ``snap``'s own change raised the loss of the incident's labelled rows (NE units): its loss there minus
    its predecessor's on the same rows (:func:`~workbench.model.rescore.snapshot_loss`); infinite when its own loss is
    not a number (a NaN in its weights scores every row NaN; weighed beside a routine refresh that started near the
    onset, the corrupt snapshot lost to it). The rows are drawn once and each snapshot scored once, however many are
    weighed."""
    previous = _previous(ctx, snap)
    if previous is None:
        return math.nan
    own = _loss(ctx, snap.snapshot_id)
    if not math.isfinite(own):  # it scores no number on these rows (a NaN in its weights): nothing hurts them more
        return math.inf
    return own - _loss(ctx, previous.snapshot_id)


def _loss(ctx: Context, snapshot_id: str) -> float:
    from workbench.model.rescore import sample_window, snapshot_loss

    rows = ctx.cached("harm_rows", lambda: sample_window(ctx.case, ctx.incident, HARM_ROWS, seed=3, labeled=True))
    return ctx.cached(("snapshot_loss", snapshot_id), lambda: snapshot_loss(ctx.case, rows, snapshot_id))


def _previous(ctx: Context, snap: Snapshot) -> Snapshot | None:
    earlier = [s for s in ctx.case.snapshots if s.published_at < snap.published_at]
    return earlier[-1] if earlier else None


def _swap(ctx: Context):
    """The snapshot swap counterfactual (:func:`workbench.model.rescore.snapshot_swap`), None without a model.

    Measured where the regression is: inside the segment that holds it alone when there is one (the detector found
    it there only, or the slice search finds it confined), since over the whole traffic a segment's regression is
    diluted and the swap too noisy to say how much of it the snapshot can account for."""
    if not ctx.has("model"):
        return None
    from workbench.data.slices import slice_filter
    from workbench.model.rescore import snapshot_swap

    segment = confined_segment(ctx)
    where = slice_filter(segment) if segment else None
    # measured on the metric that regressed when it is the calibration: a calibration-only regression moves NE by
    # little, and a share of that little is noise (:class:`workbench.model.rescore.SnapshotSwap`)
    metric = "calibration_ratio" if ctx.onset.metric == "calibration_ratio" else "normalized_entropy"
    return ctx.cached(("snapshot_swap", segment, metric),
                      lambda: snapshot_swap(ctx.case, ctx.baseline, ctx.incident, where=where, metric=metric))


def _bounded(ctx: Context, strength: float) -> float:
    """``strength`` capped at what the swap leaves possible (see :func:`model_side`): every snapshot check's evidence
    says the snapshot changed; the swap says how much of this regression that change can account for."""
    swap = _swap(ctx)
    if swap is None or swap.recovered_bound >= 0.5:
        return strength
    return min(strength, max(swap.recovered_bound, TIMING_ONLY))


def model_side(ctx: Context) -> Evidence:
    """Strength: noisy-OR of the timing prior, the diff alarm and the swap.

    * diff: the timeline's robust z for the suspect relative to its gate (``from_gate``);
    * swap (needs model.py): the share of the NE regression that re-scoring the incident
      with the baseline's snapshot removes, times ``from_z`` of its paired z (the same
      rows under both snapshots), so a share within sampling noise counts for nothing.

    The swap also bounds the rest: a snapshot whose swap recovers at most ``b`` of the regression (two standard
    errors above the share measured) cannot be its cause beyond that, however unusual its weights look. So when
    ``b`` is below one half the strength is capped at ``max(b, TIMING_ONLY)``: an unusual diff says the snapshot
    changed, the swap says whether that change is what hurt.
    """
    timeline = _timeline(ctx)
    snap = suspect(ctx)
    rows = timeline.table
    plot = plotspec.bars(rows["snapshot_id"].to_list(), rows["z"].fill_null(0.0).to_list(),
                         title="Snapshot change vs benign refreshes (robust z)",
                         y="z", highlight=[timeline.first_bad] if timeline.first_bad else [])
    if snap is None:
        alarm = f" The diff flags {timeline.first_bad}, but it did not start serving near the onset." if timeline.first_bad else ""
        hours = _near(ctx) / timedelta(hours=1)
        return Evidence("model_side", "pass", 0.0, f"No snapshot was published within {hours:.0f} h of the onset.{alarm}",
                        detail=str(timeline), data={"plot": plot})
    row = rows.filter(rows["snapshot_id"] == snap.snapshot_id).row(0, named=True)
    diff_s = (1.0 if row["nonfinite"] else S.from_gate(row["z"], row["gate"])) if row["alarm"] else 0.0
    layer = None
    if row["alarm"]:
        layer = timeline.bad_parameters[0] if timeline.first_bad == snap.snapshot_id and timeline.bad_parameters else row["top_parameter"]
    parts = [f"{snap.snapshot_id} started serving at {started(ctx, snap):%Y-%m-%d %H:%M}"]
    parts.append(f"its weights changed unlike routine refreshes (robust z {row['z']:.1f}, gate {row['gate']:.1f})"
                 + (f", most in {layer}" if layer else "") if row["alarm"] else "its weight change looks like a routine refresh")
    swap_s = 0.0
    swap = _swap(ctx)
    if swap is not None and not math.isfinite(swap.recovered):  # no clicks left to measure the regression on
        parts.append("what swapping it out recovers cannot be measured (the incident's rows define no regression to "
                     "recover: no clicks, or no labels)")
        swap = None
    if swap is not None:
        # significant (paired z through from_z) and material (its share of the regression): both must hold
        swap_s = S.from_z(swap.z) * S.from_share(swap.recovered)
        segment = confined_segment(ctx)
        where = f" in {segment}, where it lives" if segment else ""
        which = "calibration " if swap.calibration else ""
        parts.append(f"swapping it out recovers {swap.recovered:.0%} of the {which}regression{where} (paired z {swap.z:.1f})")
        if swap.recovered_bound < 0.5:
            parts.append(f"so it accounts for at most {max(swap.recovered_bound, 0.0):.0%} of it")
    s = _bounded(ctx, 1 - (1 - TIMING_ONLY) * (1 - diff_s) * (1 - swap_s))
    summary = "; ".join(parts) + "."
    verdict = "fail" if s >= 0.5 else "warn"
    return Evidence("model_side", verdict, s, summary, detail=str(timeline), data={"plot": plot, "suspect": snap.snapshot_id},
                    candidates=(Candidate("snapshot", snap.snapshot_id, s, summary, layer=layer),))


def snapshot_validation(ctx: Context) -> Evidence:
    """Strength: a failed validation of the suspect is strong evidence (0.8): its gates are relative to the stable
    snapshot with tolerances from bootstrap noise and the spread of benign refreshes (see :mod:`workbench.model.validation`).
    Capped, like every snapshot check, at what the swap leaves possible (:func:`model_side`)."""
    from workbench.model.validation import validate_snapshot

    snap = suspect(ctx)
    if snap is None:
        return Evidence.skipped("snapshot_validation", "no snapshot published near the onset")
    try:
        result = ctx.cached(("validation", snap.snapshot_id), lambda: validate_snapshot(ctx.case, snap.snapshot_id))
    except NotEnoughData as e:  # a log too thin before the snapshot, and no training.parquet: nothing to validate on
        return Evidence.skipped("snapshot_validation", e.fact)
    table = result.metrics
    plot = plotspec.table(table.columns, [list(r) for r in table.iter_rows()],
                          title=f"{snap.snapshot_id} vs {result.reference_id} on holdout")
    if result.passed:
        return Evidence("snapshot_validation", "pass", 0.0, f"{snap.snapshot_id} passes every gate against {result.reference_id}.",
                        data={"plot": plot})
    summary = f"{snap.snapshot_id} fails validation against {result.reference_id}: " + "; ".join(result.reasons[:2]) + "."
    s = _bounded(ctx, 0.8)
    return Evidence("snapshot_validation", "fail", s, summary, detail="\n".join(result.reasons), data={"plot": plot},
                    candidates=(Candidate("snapshot", snap.snapshot_id, s, summary),))


def activation_trace(ctx: Context) -> Evidence:
    """Names the first layer whose activations diverge beyond benign variation (supporting, strength 0.5 × from_z,
    capped at what the swap leaves possible: :func:`model_side`)."""
    from workbench.model.activations import compare_activations

    snap = suspect(ctx)
    prev = _previous(ctx, snap) if snap else None
    if snap is None or prev is None:
        return Evidence.skipped("activation_trace", "no snapshot (with a predecessor) published near the onset")
    diff = ctx.cached(("activations", prev.snapshot_id, snap.snapshot_id),
                      lambda: compare_activations(ctx.case, prev.snapshot_id, snap.snapshot_id))
    table = diff.table
    plot = plotspec.bars(table["layer"].to_list(), table["z"].fill_null(0.0).to_list(),
                         title=f"Activation change {prev.snapshot_id} → {snap.snapshot_id} (robust z)",
                         y="robust z", highlight=[diff.first_divergent_layer] if diff.first_divergent_layer else [])
    if not diff.first_divergent_layer:
        return Evidence("activation_trace", "pass", 0.0, "No layer's activations moved beyond benign refreshes.", detail=str(diff),
                        data={"plot": plot})
    row = table.filter(table["layer"] == diff.first_divergent_layer).row(0, named=True)
    s = _bounded(ctx, 0.5 * S.from_gate(row["z"], row["gate"]))
    summary = (f"Activations first diverge at {diff.first_divergent_layer} (parameter {diff.first_divergent_parameter}; "
               f"robust z {row['z']:.1f}, gate {row['gate']:.1f}).")
    return Evidence("activation_trace", "fail", s, summary, detail=str(diff), data={"plot": plot},
                    candidates=(Candidate("snapshot", snap.snapshot_id, s, summary, layer=diff.first_divergent_parameter),))


def served_beside(ctx: Context) -> Evidence:
    """A snapshot that served beside others (a canary, an A/B arm, a partial rollout) and did worse than the rows
    beside it in the same hours (:func:`workbench.data.served_by.served_side_by_side`): the log alone shows it, with
    no model file and no snapshot index.

    Strength: the share of the regression its rows carry (its share of the rows times the change of its excess over
    the rows beside it since the baseline, over the whole change; all of it when the regression was found in one
    segment alone), for a snapshot whose change is significant (Bonferroni over the snapshots tested) and material.
    """
    from workbench.data.served_by import served_side_by_side

    metric = slice_metric(ctx)
    found = ctx.cached("served_side_by_side", lambda: served_side_by_side(ctx.case, ctx.baseline, ctx.incident, metric,
                                                                          scheduler=ctx.scheduler))
    worse = found.worse
    if found.table.is_empty():
        return Evidence("served_beside", "pass", 0.0, "No two snapshots served side by side in the incident.",
                        detail=str(found))
    if worse is None:
        return Evidence("served_beside", "pass", 0.0, "No snapshot did worse than the rows served beside it in the same "
                        "hours.", detail=str(found))
    from workbench.rca.checks.quality import SHORT

    s = S.from_share(1.0 if ctx.segment is not None else worse["explained_share"])
    before = ("new in the incident" if worse["new"] else
              f"{worse['baseline_share']:.0%} in the baseline too, where its rows were closer to those beside them")
    summary = (f"{worse['snapshot_id']} served {worse['share']:.0%} of the incident's labelled rows ({before}) and did "
               f"worse than the rows beside it in the same hours: {SHORT.get(metric, metric)} {worse['value']:.3f} "
               f"against {worse['beside']:.3f} (z {worse['z']:.1f}); its rows carry {s:.0%} of the regression.")
    verdict = "fail" if s >= 0.5 else "warn" if s >= 0.2 else "pass"
    return Evidence("served_beside", verdict, s, summary, detail=str(found),
                    candidates=(Candidate("snapshot", worse["snapshot_id"], s, summary),) if s > 0 else ())
