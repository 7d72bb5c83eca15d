"""From cause to action: what would fix each root cause, simulated on the incident window, best first.

Each ranked :class:`~workbench.rca.ranking.RootCause` gets its ``mitigations`` (contract v2),
each simulated by :mod:`workbench.model.mitigate` on the incident's labelled rows:

================  ==========================================================================
cause             actions
================  ==========================================================================
snapshot          ``rollback`` to the last good snapshot (stable, or passing validation, and
                  published before the bad one); ``exclude_training``: the data the bad
                  snapshot added since its predecessor (not simulated: it concerns the next
                  refresh)
feature           ``backfill`` of its producer (the most specific lineage node above it, else
                  ``feature:NAME``), ``fallback`` (serve null, its baseline median or baseline
                  values), both inside the cause's segment when it names one and everywhere,
                  ``recalibrate`` as a stop-gap; a population ``shift`` gets
                  ``exclude_training`` of the old population from the refresh of the
                  serving snapshot (simulated as a model refit on the incident's labelled
                  rows) and ``recalibrate``
upstream          ``backfill`` of the node (its broken features restored), ``fallback`` of those
                  features, ``recalibrate``
label             ``exclude_training``: the window of wrong labels, predicted as the window's
                  quality with correct labels (the served predictions are fine; recalibrating
                  to wrong labels would break them); ``investigate`` the label join
calibration       ``recalibrate``; ``investigate`` the serving-side calibration config
slice             ``recalibrate`` inside the segment; ``investigate`` the segment
================  ==========================================================================

**Order.** Simulated actions predicted to recover at least half of the regression (``USEFUL``),
highest first, except that a stop-gap (``recalibrate``, unless the cause is a calibration or a
segment: it hides the damage, whose cause stays) follows the fixes of the cause that recover
half; then the actions that cannot be simulated (``predicted`` null) in the order above; then
the simulated actions that recover less (a stop-gap that leaves most of the regression is not
the best first action). An action predicted to make the regression worse (recovery below 0)
is left out. Where an action should be simulated and
cannot be (no ``model.py``: nothing can be re-scored; too few labelled rows), it becomes
``investigate`` with the instruction and the reason, as the contract asks.

Each cause's plan runs through :meth:`Context.run` as its own node (``mitigations:KIND:TARGET``):
results are cached in the context, and a plan that raises is an ``errors`` entry of the
diagnosis, never a crash; that cause then has no mitigations.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from workbench.rca.evidence import Evidence
from workbench.rca.tree import Node
from workbench.windows import Window, iso

if TYPE_CHECKING:
    from workbench.model.mitigate import Break, NotSimulated, Simulation, Simulator
    from workbench.rca.context import Context
    from workbench.rca.ranking import RootCause

__all__ = ["ACTIONS", "Mitigation", "plan_mitigations"]

ACTIONS = ("rollback", "fallback", "backfill", "recalibrate", "exclude_training", "investigate")
SERVE_WORDS = {"default": "null (the default the model fills in)", "median": "its baseline median",
               "baseline": "values drawn from the baseline window"}


@dataclass(frozen=True, slots=True)
class Mitigation:
    """One action for a root cause (contract v2 ``mitigations``) and its simulated effect.

    ``how`` is the instruction, one sentence; ``predicted`` the simulated quality on the
    incident window after the action (None when it cannot be simulated, with ``reason``).
    ``factor``/``offset`` describe a recalibration (``scale``: ``odds``, the served odds are
    multiplied by ``factor``; ``logit``, the served logit ``z`` becomes ``factor * z + offset``);
    ``window`` the training data to leave out; ``slice`` the segment an action is confined to;
    ``serve`` what a fallback serves; ``proposes`` the action an ``investigate`` stands for.
    """

    action: str
    target: str
    how: str
    predicted: Simulation | None = None
    reason: str | None = None
    factor: float | None = None
    offset: float | None = None
    scale: str | None = None
    window: Window | None = None
    slice: str | None = None
    serve: str | None = None
    proposes: str | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"mitigation action {self.action!r} is not one of {ACTIONS}")

    @property
    def recovery(self) -> float | None:
        return self.predicted.recovery if self.predicted is not None and math.isfinite(self.predicted.recovery) else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "target": self.target, "how": self.how,
                               "predicted": self.predicted.to_dict() if self.predicted is not None else None}
        if self.factor is not None:
            out["factor"] = round(self.factor, 4)
            out["scale"] = self.scale
        if self.offset is not None:
            out["offset"] = round(self.offset, 4)
        if self.window is not None:
            out["from"], out["to"] = iso(self.window.start), iso(self.window.end)
        for key in ("slice", "serve", "proposes", "reason"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def __str__(self) -> str:
        """``rollback v7.57: Roll serving back ... — rolling back would bring NE from 0.874 to 0.815, 94% ... (predicted ...)``."""
        if self.predicted is None:
            return f"{self.action} {self.target}: {self.how}" + (f" (not simulated: {self.reason})" if self.reason else "")
        return f"{self.action} {self.target}: {self.how} Predicted: {self.predicted.sentence()}."


# ---------------------------------------------------------------- planning
def plan_mitigations(ctx: Context, causes: Sequence[RootCause]) -> list[RootCause]:
    """``causes`` with their ``mitigations`` attached, each cause's plan run as a node of ``ctx`` (see the module doc)."""
    out = []
    for cause in causes:
        node = Node(f"mitigations:{cause.kind}:{cause.target}", f"What would fix {cause.kind} {cause.target}, and how much "
                    "of the regression would it recover?", functools.partial(_plan_check, cause=cause))
        ev = ctx.run(node)
        plans = ev.data.get("mitigations", ()) if ev.verdict != "error" else ()
        out.append(replace(cause, mitigations=tuple(plans)))
    return out


def _plan_check(ctx: Context, cause: RootCause) -> Evidence:
    plans = ctx.cached(("mitigations", cause.kind, cause.target, cause.slice, cause.change), lambda: plan(ctx, cause))
    first = plans[0] if plans else None
    summary = (f"{first.action} {first.target}" + (f": predicted recovery {first.recovery:.0%}" if first.recovery is not None else "")
               if first else "no action found")
    return Evidence(f"mitigations:{cause.kind}:{cause.target}", "info", 0.0, summary, detail="\n".join(map(str, plans)),
                    data={"mitigations": plans})


def simulator(ctx: Context, within: str | None = None) -> Simulator:
    """The investigation's simulator (cached): the incident's labelled rows, measured on the headline metric. With
    ``within``, one of that segment's rows, unless the investigation's own already reads them or the whole traffic
    (a segment that moved the other way lies outside the one the regression was found in, whose simulator holds none
    of its rows)."""
    from workbench.model.mitigate import Simulator

    segment = ctx.segment if within is None or ctx.segment in (None, within) else within
    # the whole windows' values of each metric (the detector's pooled values), unless the regression is a segment's
    anchors = {v.metric: (v.baseline, v.current) for v in ctx.onset.metrics} if segment is None else None
    iso = ctx.results.get("isolation")  # the model-free surrogate feature isolation fitted on the same windows, if it ran
    surrogate = getattr(iso, "surrogate", None)
    stand_in = (surrogate, float(getattr(iso, "surrogate_r2", math.nan))) if surrogate is not None else None
    key = "simulator" if segment == ctx.segment else f"simulator:{segment}"
    return ctx.cached(key, lambda: Simulator(ctx.case, ctx.baseline, ctx.incident, metric=ctx.onset.metric,
                                             segment=segment, drawn=ctx.sampled, anchors=anchors, stand_in=stand_in))


def plan(ctx: Context, cause: RootCause) -> tuple[Mitigation, ...]:
    """The mitigations of one cause, best first (the module docstring says which and in what order)."""
    planner = {"snapshot": _snapshot, "feature": _feature, "upstream": _upstream, "label": _label,
               "calibration": _calibration, "slice": _slice}[cause.kind]
    return _ordered(planner(ctx, cause), stop_gaps(cause.kind)) or (Mitigation(
        "investigate", cause.target, f"Every simulated action for {cause.kind} {cause.target} would make the incident window "
        "worse: find the change behind it before acting.", reason="no simulated action recovers any of the regression"),)


USEFUL = 0.5  # a simulated action that recovers less than this share is listed after the ones that cannot be simulated


# A cause's own fix: recalibrating is a stop-gap for any cause, except the one whose break is a scale (calibration) or
# that lives in one segment (recalibrated inside it). The ranking counts a cause's share by the same rule (stop_gaps).
OWN_RECALIBRATION = frozenset({"calibration", "slice"})


def stop_gaps(kind: str) -> tuple[str, ...]:
    """The actions that hide a cause's damage without fixing it: a recalibration, for every cause but those whose own
    fix it is (:data:`OWN_RECALIBRATION`). Fitted to the incident's rows, it often predicts as much as the fix, or
    more: dev feature/slice_confined/7 read 1.07 against the segment's backfill 0.96, and an engineer's first action
    is the backfill (for a population shift, the refresh on the new population)."""
    return () if kind in OWN_RECALIBRATION else ("recalibrate",)


def _ordered(items: list[Mitigation], stop_gaps: Sequence[str] = ()) -> tuple[Mitigation, ...]:
    """The module docstring's order; ``stop_gaps``: the actions that follow the useful fixes of the cause."""
    simulated = sorted((m for m in items if m.recovery is not None and m.recovery >= 0), key=lambda m: -(m.recovery or 0.0))
    useful = sorted((m for m in simulated if (m.recovery or 0.0) >= USEFUL), key=lambda m: m.action in stop_gaps)  # stable
    rest = [m for m in items if m.predicted is None or (m.predicted is not None and m.recovery is None)]
    return tuple(useful + rest + [m for m in simulated if (m.recovery or 0.0) < USEFUL])


def _made(action: str, target: str, how: str, result: Simulation | NotSimulated, **extra: Any) -> Mitigation:
    """The mitigation, or ``investigate`` standing for it when it could not be simulated."""
    from workbench.model.mitigate import NotSimulated

    if isinstance(result, NotSimulated):
        return Mitigation("investigate", target, how, reason=result.reason, proposes=action,
                          **{k: v for k, v in extra.items() if k in ("slice", "window")})
    return Mitigation(action, target, how, predicted=result, **extra)


def _incident_span(ctx: Context) -> Window:
    """From the onset to the end of the regression (or of the reliably labelled data)."""
    end = ctx.onset.end or ctx.incident.end
    start = ctx.onset_time or ctx.incident.start
    return Window(start, end) if end > start else ctx.incident


def _recalibrate(ctx: Context, within: str | None = None) -> Mitigation:
    result = simulator(ctx, within).recalibrate(within)
    place = f" on {within}" if within else ""
    from workbench.model.mitigate import NotSimulated

    if isinstance(result, NotSimulated):
        return _made("recalibrate", "calibration", f"Recalibrate the served predictions{place} on recent labelled rows until "
                     "the cause is fixed.", result, slice=within)
    params = dict(result.parameters)
    if "offset" in params:
        how = (f"Map the served logit z to {params['factor']:.3f}·z {params['offset']:+.3f}{place} until the cause is fixed "
               "(fitted on the incident's labelled rows).")
        return Mitigation("recalibrate", "calibration", how, predicted=result, factor=params["factor"],
                          offset=params["offset"], scale="logit", slice=within)
    how = (f"Multiply the served odds by {params['factor']:.3f}{place} until the cause is fixed "
           "(fitted on the incident's labelled rows).")
    return Mitigation("recalibrate", "calibration", how, predicted=result, factor=params["factor"], scale="odds", slice=within)


def _snapshot(ctx: Context, cause: RootCause) -> list[Mitigation]:
    from workbench.model.mitigate import NotSimulated, last_good_snapshot
    from workbench.model.validation import Validation, validate_snapshot
    from workbench.rca.checks.snapshots import started

    case = ctx.case
    if cause.target not in {s.snapshot_id for s in case.snapshots}:
        return _route_back(ctx, cause)
    out: list[Mitigation] = []
    sim = simulator(ctx)
    bad = case.snapshot(cause.target)
    since = started(ctx, bad)  # a snapshot pinned back started serving after it was published (last_good_snapshot)
    if sim.model_problem is None:
        def validate(sid: str) -> Validation:
            return ctx.cached(("validation", sid), lambda: validate_snapshot(case, sid))

        good = last_good_snapshot(case, cause.target, validate, since=since)
    else:  # without the model only a snapshot marked stable is known to be good
        until = max(since, bad.published_at)
        stable = [s for s in case.snapshots if s.stable and s.published_at < until and s.snapshot_id != bad.snapshot_id]
        good = (stable[-1].snapshot_id, "marked stable") if stable else None
    if good is None:
        out.append(Mitigation("investigate", cause.target, f"No snapshot before {cause.target} is known to be good: retrain "
                              "from the last good data and validate it before publishing.", proposes="rollback",
                              reason="no earlier snapshot is stable or passes validation"))
    else:
        sid, why = good
        result = sim.rollback(sid) if sim.model_problem is None else NotSimulated(sim.model_problem)
        out.append(_made("rollback", sid, f"Roll serving back to {sid} ({why}), and gate the next snapshot with "
                         "`workbench validate CASE --snapshot ID` before publishing.", result))
    before = [s for s in case.snapshots if s.published_at < bad.published_at]
    if before:
        window = Window(before[-1].published_at, bad.published_at)
        out.append(Mitigation("exclude_training", cause.target, f"Leave the data {cause.target} was trained on after "
                              f"{before[-1].snapshot_id} ({window}) out of the next refresh, and do not warm-start from it.",
                              window=window, reason="it concerns the next refresh, not the served rows"))
    return out


def _route_back(ctx: Context, cause: RootCause) -> list[Mitigation]:
    """A snapshot the log names but the index does not (a canary or an A/B arm, found by
    :func:`~workbench.rca.checks.snapshots.served_beside`): route its traffic back to the snapshot serving beside it,
    predicted from the log alone by serving its rows as the rows beside them were in the same hours."""
    from workbench.model.mitigate import WATCHED, Simulation, recovery

    found = ctx.results.get("served_side_by_side")
    back = found.beside_of(cause.target) if found is not None else None
    if found is None or back is None:
        return [Mitigation("investigate", cause.target, f"Stop serving {cause.target} and find what changed in it.",
                           proposes="rollback", reason="no snapshot served beside it to route its traffic to")]
    values = {m: found.served_as_beside(cause.target, m) for m in WATCHED if m != "auc"}
    metric = ctx.onset.metric if ctx.onset.metric in values else found.metric
    base, inc, after, rows = values[metric]
    result = Simulation("rollback", back, metric, base, inc, after, recovery(metric, base, inc, after), rows,
                        f"the {rows:,} labelled incident rows {cause.target} served, served as the rows {back} and the "
                        "others served beside them in the same hours were (a prediction from the log alone)",
                        after=tuple((m, v[2]) for m, v in values.items()))
    return [Mitigation("rollback", back, f"Route the traffic of {cause.target} back to {back}, which served beside it, "
                       f"and validate {cause.target} before serving it again.", predicted=result)]


def _breaks(ctx: Context, features: Sequence[str]) -> dict[str, Break]:
    """How each feature broke, from the drift check's table (kind, scale ratio, share of values lost)."""
    import polars as pl

    from workbench.model.mitigate import Break
    from workbench.rca.checks._common import drift

    table = drift(ctx).table.filter(pl.col("feature").is_in(list(features)))
    out = {}
    for row in table.iter_rows(named=True):
        cb, ci = row.get("coverage_baseline"), row.get("coverage_incident")
        lost = max(cb - ci, 0.0) / cb if cb and ci is not None else None
        out[row["feature"]] = Break(row["kind"], row.get("scale_ratio"), lost)
    return out


def _producer(ctx: Context, feature: str) -> str:
    """The most specific lineage node above ``feature`` (fewest features fed, then nearest), else ``feature:NAME``."""
    graph = ctx.case.lineage
    if graph is None:
        return f"feature:{feature}"
    above = graph.upstream_of_feature(feature)
    if not above:
        return f"feature:{feature}"
    return min(above, key=lambda n: (len(graph.features_of(n)), -len(graph.ancestors(n)), n))


def _repairs(ctx: Context, features: Sequence[str], target: str, within: str | None, what: str,
             kind: str | None = None) -> list[Mitigation]:
    """``backfill`` of ``target`` and ``fallback`` of ``features`` (``within`` a segment), simulated. ``kind``: how
    the features broke inside the segment, when the cause says so (the drift table measured the whole traffic)."""
    sim = simulator(ctx)
    span = _incident_span(ctx)
    names = ", ".join(features)
    place = f" on {within}" if within else ""
    breaks = _breaks(ctx, features)
    if within and kind in ("coverage", "scale", "stale"):
        breaks = {f: replace(b, kind=kind) for f, b in breaks.items()}
    # without lineage the target is the feature's own node: name the pipeline that produces it, and the features once
    fixed = f"the pipeline that produces {names}" if target == f"feature:{names}" else target
    listed = "" if what == names else f" ({names})"
    out = [_made("backfill", target, f"Backfill {what}{listed} for {span}{place} once {fixed} is fixed.",
                 sim.backfill(features, breaks, within=within, target=target), window=span, slice=within)]
    from workbench.model.mitigate import HOWS, NotSimulated

    # one fallback per feature, each simulated alone: the contract's fallback targets a feature, and a team's
    # automation serves one feature's default at a time (a node's features as one action read "f_a, f_b, f_c")
    for f in features:
        fb = sim.fallback([f], within=within, target=f)
        serve = None if isinstance(fb, NotSimulated) else HOWS[int(dict(fb.parameters)["with"])]
        words = SERVE_WORDS.get(serve or "default", "its default")
        out.append(_made("fallback", f, f"Serve {f} as {words}{place} until {fixed} is fixed.", fb, slice=within,
                         serve=serve))
    return out


def _feature(ctx: Context, cause: RootCause) -> list[Mitigation]:
    f = cause.target
    if cause.change == "shift":
        return [_refit(ctx, f), _recalibrate(ctx)]
    out = _repairs(ctx, [f], _producer(ctx, f), cause.slice, f"{f}", kind=cause.change)
    if cause.slice:  # the break was placed in one segment: the same repairs everywhere too, in case it reached further
        out += _repairs(ctx, [f], _producer(ctx, f), None, f"{f}")
    out.append(_recalibrate(ctx))
    return out


def _refit(ctx: Context, feature: str) -> Mitigation:
    """A population shift's fix: the next refresh leaves the old population out (or reweights it toward the new mix),
    simulated as a model refit on the incident's labelled rows (:meth:`Simulator.refit`). The contract names the
    snapshot a refresh replaces as ``exclude_training``'s target; without snapshots it stays ``investigate``, whose
    ``predicted`` is null by the contract, and the refit's prediction is told in its words (5 of 48 dev shift cases
    of seeds 0-23 had no snapshot, and their plan said nothing of what a refresh would give)."""
    span = _incident_span(ctx)
    series = ctx.onset.series
    first = series["window"].min() if "window" in series.columns and series.height else None
    old = Window(min(first, ctx.baseline.start) if isinstance(first, datetime) else ctx.baseline.start, span.start)
    how = (f"The population behind {feature} moved and nothing broke: refresh the model on data from {iso(span.start)} on, "
           "leaving the older population out or reweighting it toward the new mix; a backfill or fallback would not help.")
    serving = [s for s in ctx.case.snapshots if s.published_at < span.end]
    sid = serving[-1].snapshot_id if serving else None
    result = simulator(ctx).refit(sid or "the serving model")  # the refit needs no snapshot, only the log
    if sid is not None:
        return _made("exclude_training", sid, how, result, window=old)
    from workbench.model.mitigate import NotSimulated

    told = "" if isinstance(result, NotSimulated) else f" A model refit on the new population would move {result.sentence()}."
    return Mitigation("investigate", feature, how + told, proposes="exclude_training",
                      reason="no snapshot is known to have served the incident, so there is no refresh to name")


def _upstream(ctx: Context, cause: RootCause) -> list[Mitigation]:
    node = cause.target
    ev = ctx.evidence_of("lineage")
    covered = list(ev.data.get("covered", ())) if ev is not None and ev.data.get("node") == node else []
    if not covered and ctx.case.lineage is not None:
        import polars as pl

        from workbench.rca.checks._common import drift

        fed = ctx.case.lineage.features_of(node) & set(ctx.case.features)
        covered = sorted(drift(ctx).table.filter(pl.col("feature").is_in(list(fed)) & (pl.col("kind") != "none"))["feature"])
    if not covered:
        return [Mitigation("investigate", node, f"Open the incident with the owners of {node}: no broken feature below it "
                           "was found to restore.", proposes="backfill", reason="no broken feature below the node")]
    out = _repairs(ctx, covered, node, cause.slice, f"{node}'s broken outputs", kind=cause.change)
    if cause.slice:  # the features broke in one segment: the same repairs everywhere too, as for a feature
        out += _repairs(ctx, covered, node, None, f"{node}'s broken outputs")
    out.append(_recalibrate(ctx))
    return out


def _label(ctx: Context, cause: RootCause) -> list[Mitigation]:
    span = _incident_span(ctx)
    result = simulator(ctx).relabel()
    return [_made("exclude_training", "label", f"The served predictions are fine and the labels are not: leave the rows "
                  f"labelled in {span} out of the next refresh, and re-join their labels once the label logging is fixed.",
                  result, window=span),
            Mitigation("investigate", cause.target, f"Check the label logging and join for {span}; do not recalibrate to these "
                       "labels, it would make the served predictions wrong.", proposes="fix the label join",
                       reason="a label join cannot be simulated")]


def _calibration(ctx: Context, cause: RootCause) -> list[Mitigation]:
    return [_recalibrate(ctx), Mitigation(
        "investigate", "calibration", "The served predictions changed while inputs and snapshot did not: revert the "
        "serving-side calibration, post-processing or fallback change pushed near the onset.", proposes="revert the serving config",
        reason="the serving config is not part of the case")]


def _slice(ctx: Context, cause: RootCause) -> list[Mitigation]:
    return [_recalibrate(ctx, within=cause.target), Mitigation(
        "investigate", cause.target, f"The regression is confined to {cause.target}: look for a product change, outage or "
        "partner issue in that segment.", proposes="fix the segment", reason="a segment's behaviour cannot be simulated")]
