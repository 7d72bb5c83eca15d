"""Feature-side checks: which features broke, do they differ from training, how much of the change each explains,
and which upstream node feeds the ones that broke together."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING

import polars as pl

from workbench.rca import _strength as S
from workbench.rca import plotspec
from workbench.rca.checks._common import (
    BROKEN,
    CHANGE,
    CHANGED,
    NEW_AGAINST_JOINED,
    broke_in_new_segment,
    calendar,
    change_words,
    confined_segment,
    coverage_delta,
    describe_break,
    drift,
    feature_slices,
    feature_strengths,
    hhmm,
    kind_inside,
    label_change,
    population_moved,
    window_rows,
)
from workbench.rca.evidence import Candidate, Evidence
from workbench.windows import iso

if TYPE_CHECKING:
    from workbench.rca.context import Context

__all__ = ["feature_isolation", "feature_side", "lineage", "training_skew"]


LOOSE_KINDS = ("none", "decorrelated")  # drift kinds of a feature whose values may have come loose from their rows
GRADUAL_HOURS = 12.0  # a change that takes longer than this to arrive is a population moving, not a pipeline breaking
TOGETHER = 3  # this many correlated inputs shifting together, with the labels, is a population moving
LABELS_CAME = 0.5  # population_moved at least this: the labels moved with the inputs (a strength, 0-1)
REACH = 0.9  # the share of the features an upstream node feeds that show its break (node_posterior)
PLAUSIBLE = 0.5  # a node at least this likely broken (node_posterior) competes on how many changes it explains


def _shifted(ctx: Context, table: pl.DataFrame) -> dict[str, str]:
    """Features whose distribution moved like a population, not like a break: ``feature -> why``.

    A shift has no nulls or constants and either arrives gradually (``arrival_hours`` above
    ``GRADUAL_HOURS`` and two and a half periods of the grain, so a step blurred by one period of
    smoothing is not taken for a ramp) or moves ``TOGETHER`` or more correlated inputs at once (each
    moved with its partners in the baseline, ``relation_baseline >= 0.3``; drift kind ``distribution``)
    and brings its labels with it (:func:`population_moved` at least ``LABELS_CAME``): one upstream table
    that broke moves its correlated inputs at once too, but no label (held-back upstream/stale/1000122,
    draw S: three rates on a 0.1 grid frozen together read as a shift, with ``population_moved`` 0.00,
    and the node went unnamed). On the dev draws every shift that moved several inputs also arrived
    gradually; the labels moved with the inputs in all of them (0.31-0.99) and in no upstream break. Without
    labels to read (none joined yet, or none in a window) the evidence is 0 and only a gradual arrival makes a shift.
    A feature whose values were multiplied (drift kind ``scale``) is a shift only when the change arrived
    gradually: a unit bug arrives at once with the deploy that brought it, and one upstream table
    rescaled moves its correlated features together, while a population moving along a log-normal
    input (revenue, counts) multiplies it over hours or days.

    A gradual arrival is a shift only when the labels do not deny it (:func:`_labels_allow_a_shift`): served inputs
    that drift over three days while the label rate stays put (the predictions +45 % in log, the labels +1 %) are a
    serving bug that ramped in, not a population, whose clicks would have moved with it.
    """
    from workbench.case.grain import grain_delta
    from workbench.data.drift import arrival_hours, feature_timeline

    moved = table.filter((pl.col("type") == "numeric") & pl.col("kind").is_in(["distribution", "scale"]))
    if moved.is_empty() or ctx.onset_time is None:
        return {}
    out: dict[str, str] = {}
    linked = moved.filter((pl.col("kind") == "distribution") & (pl.col("relation_baseline").fill_null(0.0) >= 0.3))
    if linked.height >= TOGETHER and population_moved(ctx) >= LABELS_CAME:
        out |= dict.fromkeys(linked["feature"].to_list(), f"{linked.height} correlated inputs moved together")
    if not _labels_allow_a_shift(ctx):
        return out
    names = tuple(moved["feature"].head(5).to_list())
    every = ctx.onset.grain or "1h"
    grain_hours = grain_delta(every) / timedelta(hours=1)
    tl = ctx.cached(("feature_timeline", names, every),
                    lambda: feature_timeline(ctx.case, list(names), every=every, scheduler=ctx.scheduler))
    for f in names:
        hours = arrival_hours(tl.filter(pl.col("feature") == f), ctx.onset_time, ctx.baseline)
        if math.isfinite(hours) and hours > max(GRADUAL_HOURS, 2.5 * grain_hours):
            out.setdefault(f, f"the change arrived over {hours:.0f} h")
    return out


def _labels_allow_a_shift(ctx: Context) -> bool:
    """Whether the labels leave a population shift possible: the label rate followed at least ``FOLLOW`` (a quarter,
    the bar under which the label check says the predictions did not follow the labels) of the prediction mean's move
    (:attr:`workbench.data.labels.LabelShift.labels_followed`), or that cannot be read (the predictions did not move
    materially, or no label joined yet). On the dev draws' detected shifts (seeds 0-2 and 18-23) whose predictions
    moved materially the labels followed 0.44-1.0 of them (a latent shift the model extrapolates badly moves its
    clicks less than its predictions), but for one whose located onset was another event; a served input ramped up
    3 SD left them at 0."""
    from workbench.data.labels import FOLLOW

    ls, _ = label_change(ctx)
    followed = ls.labels_followed
    return followed is None or followed >= FOLLOW


def feature_side(ctx: Context) -> Evidence:
    """Strength per feature: its drift severity (an effect size beyond organic drift) through ``from_js``.

    How it changed (contract ``change``): ``coverage``, ``scale`` and ``stale`` from where the
    moved mass went; ``decorrelated`` when the values kept their distribution but stopped
    moving with their row (:func:`workbench.data.drift.feature_drift`); ``shift`` when the
    population moved (:func:`_shifted`), whose remedy is retraining or reweighting, not a
    backfill. When one feature's break concentrates in a single slice value, the candidate
    is narrowed to it (``slice`` field), e.g. ``platform=android``, and how it broke is read
    there when the whole traffic dilutes it to a drift (:func:`kind_inside`). A slice column
    whose mix moved is a traffic-mix finding, reported here and never a broken feature; so
    is a clock feature that is the timestamp's calendar in both windows (:func:`calendar`).
    """
    from workbench.data.drift import FLOOR, feature_timeline

    fd = drift(ctx)
    strengths = feature_strengths(ctx)
    table = fd.table.sort("severity", descending=True)
    numeric = table.filter(pl.col("type") == "numeric")
    shifted = _shifted(ctx, numeric)
    mix = table.filter((pl.col("type") == "categorical") & (pl.col("kind") != "none"))
    cands = []
    for row in numeric.head(8).iter_rows(named=True):
        f = row["feature"]
        s = strengths.get(f, 0.0)
        if s < CHANGED:
            continue
        change = "shift" if f in shifted else CHANGE.get(row["kind"])
        where, delta, new = None, row["coverage_delta"], False
        if ctx.case.slices and change != "shift":
            by = feature_slices(ctx, f)
            where = by.top["slice"] if by.concentrated and by.top else None
            new = bool(where and by.top and by.top["new"])
            if where and new and not broke_in_new_segment(ctx, f, where):
                where, new = None, False
            if where and change is None:  # diluted on the whole traffic: say how it broke where it broke
                change = CHANGE.get(kind_inside(ctx, f, where))
            if where:  # the slice's own coverage change: the traffic's mix can turn the whole's the other way
                delta = coverage_delta(by.top)
        what = change_words(row["kind"] if CHANGE.get(row["kind"]) == change else change or row["kind"], delta)  # the kind says it finer
        place = (f" only for {where}" + (f" ({NEW_AGAINST_JOINED})" if new else "")) if where else ""
        why = f"; {shifted[f]}" if f in shifted else ""
        cands.append(Candidate("feature", f, s, f"{f} {what}{place} at {hhmm(ctx)}",
                               detail=f"{f}: {describe_break(row)} (severity {row['severity']:.2f}){why}",
                               slice=where, change=change))
    top = table.head(12)
    plots = []
    if cands:
        names = [c.target for c in cands[:3]]
        tl = ctx.cached(("feature_timeline", tuple(names)), lambda: feature_timeline(ctx.case, names, scheduler=ctx.scheduler))
        x = [iso(t) for t in tl.filter(pl.col("feature") == names[0])["window"].to_list()]
        plots.append(plotspec.timeseries(x, {f: tl.filter(pl.col("feature") == f)["coverage"].to_list() for f in names},
                                         title="Coverage (share of non-null values) per hour", y="coverage",
                                         onset=iso(ctx.onset_time) if ctx.onset_time else None))
    verdict = "fail" if any(c.strength >= BROKEN for c in cands) else "warn" if cands else "pass"
    broken = [c for c in cands if c.strength >= BROKEN]
    summary = (f"{len(broken)} feature(s) changed: " + ", ".join(c.summary for c in broken[:3]) + "." if broken else
               "No feature changed beyond organic drift." if not cands else
               f"Weak changes only; strongest: {cands[0].summary}.")
    if mix.height:
        summary += " Traffic mix moved in " + ", ".join(
            f"{r['feature']} (JS {r['js']:.2f})" for r in mix.head(3).iter_rows(named=True)) + " (a population change, not a break)."
    clock = calendar(ctx)
    moved_clock = [f for f in numeric.filter(pl.col("severity") >= FLOOR)["feature"].to_list() if f in clock]
    if moved_clock:
        summary += (" " + ", ".join(f"{f} (the {clock[f]})" for f in moved_clock[:3]) + " moved only as the windows' "
                    "hours differ (a function of the timestamp in both windows, not a break).")
    return Evidence("feature_side", verdict, max((c.strength for c in cands), default=0.0), summary, detail=str(fd),
                    data={"plot": plotspec.bars(top["feature"].to_list(), top["severity"].to_list(),
                                                title="Features ranked by severity (JS distance beyond organic drift)", y="severity",
                                                highlight=[c.target for c in broken]), "plots": plots,
                          "shifted": shifted, "traffic_mix": mix["feature"].to_list()},
                    candidates=tuple(cands))


def training_skew(ctx: Context) -> Evidence:
    """Supporting evidence only: a feature skewed against training in the incident but not the baseline.

    Strength: half the ``from_js`` of the *increase* in JS distance to training, so it can
    confirm a break but not outvote the drift check. A slice column that moved away from training is the traffic
    mix moving, a population change, never a broken feature: it is named in the summary and proposes no cause
    (outside test ``i15``: a new app version was a cause "feature app_version", with a backfill as its fix).
    """
    from workbench.data.drift import training_skew as skew

    before = ctx.cached("skew_baseline", lambda: skew(ctx.case, ctx.baseline)).table
    after = ctx.cached("skew_incident", lambda: skew(ctx.case, ctx.incident)).table
    joined = after.join(before.select("feature", pl.col("severity").alias("before")), on="feature", how="left").with_columns(
        (pl.col("severity") - pl.col("before").fill_null(0.0)).alias("increase")).sort("increase", descending=True)
    cands = tuple(Candidate("feature", r["feature"], 0.5 * S.from_js(r["increase"]),
                            f"{r['feature']} no longer matches the training data",
                            detail=f"JS distance to training.parquet rose by {r['increase']:.2f} at the onset")
                  for r in joined.filter(~pl.col("feature").is_in(ctx.case.slices)).head(5).iter_rows(named=True)
                  if S.from_js(r["increase"]) > 0.2)
    mix = [f"{r['feature']} (JS +{r['increase']:.2f})" for r in joined.filter(pl.col("feature").is_in(ctx.case.slices))
           .iter_rows(named=True) if S.from_js(r["increase"]) > 0.2]
    summary = (f"{len(cands)} feature(s) started to differ from training: " + ", ".join(c.target for c in cands) + "."
               if cands else "No feature moved away from the training data at the onset.")
    if mix:
        summary += f" The traffic mix moved away from training in {', '.join(mix)} (a population change, not a break)."
    top = joined.head(10)
    return Evidence("training_skew", "warn" if cands else "pass", max((c.strength for c in cands), default=0.0), summary,
                    data={"plot": plotspec.bars(top["feature"].to_list(), top["increase"].to_list(),
                                                title="Increase in training-serving skew (JS distance)", y="ΔJS")}, candidates=cands)


def node_posterior(below: int, fed: int, changed: int, features: int) -> float:
    """Probability that an upstream node broke, rather than its features on their own, given that ``below`` of the
    ``fed`` features it feeds changed at the onset while ``changed`` of the case's ``features`` did.

    If the node broke, each feature it feeds shows the break with probability ``REACH`` (a table's break reaches
    nearly every feature read from it; a column-level fault may spare some). If the features changed on their own,
    each did with the rate the case shows, ``changed / features``. Even prior odds; the likelihood ratio is
    ``(REACH / rate)^below ((1 - REACH) / (1 - rate))^(fed - below)``. A node whose every feature changed is
    likely (2 of 2 out of 8 features: 0.93); one with half of its features unchanged is not (2 of 4: 0.19), as
    two features that broke alone happen to share a source that often.
    """
    rate = min(max(changed / max(features, 1), 1e-6), 1 - 1e-6)
    log_lr = below * math.log(REACH / rate) + (fed - below) * math.log((1 - REACH) / (1 - rate))
    return 1.0 / (1.0 + math.exp(-log_lr))


def lineage(ctx: Context) -> Evidence:
    """The upstream node that best explains the features that changed together.

    Changed features are those the feature check lists (strength ≥ ``CHANGED``), broken
    ones those with strength ≥ ``BROKEN``: a table that lost 15% of its rows shows in one
    feature as a break and in the others it feeds only as a change. Every table or
    pipeline that feeds at least two changed features, one of them broken, is weighed by
    :func:`node_posterior`: how much likelier its pattern of changed and unchanged features
    is if the node broke than if the features changed on their own. Of the nodes at least as
    likely broken as not (``PLAUSIBLE``), the one that explains the most changed features wins: one
    break behind three changes is a simpler account than a break behind two beside a third
    feature that broke on its own at the same moment (the posterior alone prefers a pipeline
    whose every feature changed to the table above it that also feeds the third and one
    feature that shows no change, a frozen boolean whose value was already the common one).
    Then the most probable, then the most specific (fewest features fed, then the one closest
    to the features). One feature's break alone is best described as that feature.
    Strength: that probability × the evidence that something below it broke (the noisy-OR of
    the strengths of the features it explains, as the ranking combines evidence) × the squared share of
    them that broke the same way (a table's break hits the features it feeds alike;
    features that broke differently more likely broke separately; a plain drift is
    compatible with any kind, as a boolean or bounded input shows a freeze or a rescale
    as a drift). A feature read as a population shift is never the broken one a node needs,
    but it still counts as changed: when a node broke others at the same onset, a boolean
    it feeds that moved over a few periods is more likely the same break than a population
    moving by chance at that moment.
    """
    graph = ctx.case.lineage
    assert graph is not None
    strengths = feature_strengths(ctx)
    side = ctx.evidence_of("feature_side")
    shifted = set(side.data.get("shifted", {})) if side is not None else set()
    changed = {f: s for f, s in strengths.items() if s >= CHANGED}
    broken = {f for f, s in changed.items() if s >= BROKEN and f not in shifted}
    if not broken or len(changed) < 2:
        return Evidence("lineage", "pass", 0.0,
                        "Fewer than two features changed, so no shared upstream cause is needed." if broken else
                        "No feature broke, so no upstream node is implicated.")
    known = set(ctx.case.features)
    best = None
    for node in graph.kinds:
        if node.startswith("feature:"):
            continue
        fed = graph.features_of(node) & known
        covered = fed & changed.keys()
        if len(covered) < 2 or not covered & broken:
            continue
        posterior = node_posterior(len(covered), len(fed), len(changed), len(known))
        plausible = posterior >= PLAUSIBLE
        key = (plausible, len(covered) if plausible else 0, round(posterior, 9), -len(fed), len(graph.ancestors(node)))
        if best is None or key > best[0]:
            best = (key, node, covered, fed, posterior)
    if best is None:
        return Evidence("lineage", "pass", 0.0, f"No upstream node feeds two of the {len(changed)} changed features with a "
                        "broken one among them.")
    _, node, covered, fed, posterior = best
    kind_of = dict(drift(ctx).table.select("feature", "kind").iter_rows())
    kinds = [CHANGE.get(k, k) for k in (kind_of.get(f, "none") for f in covered)]  # a default is a coverage loss
    specific = [k for k in kinds if k != "distribution"]
    common = max(set(specific), key=specific.count) if specific else "distribution"
    # A feature shows a table's break in the form its type allows: a frozen or rescaled input reaches a boolean or a
    # bounded score as a plain move of its distribution. So "drifted" is compatible with any specific kind; only two
    # different specific kinds (a coverage loss beside a stale value) speak for separate breaks.
    alike = sum(k in (common, "distribution") for k in kinds) / len(kinds)
    least_gain = drift(ctx).table.filter(pl.col("feature").is_in(list(covered)))["coverage_delta"].min()
    what = change_words(common, least_gain if isinstance(least_gain, float) else None, "broke") if alike == 1 else "broke"
    s = posterior * (1.0 - math.prod(1.0 - changed[f] for f in covered)) * alike**2
    # where the features broke is where the node broke: the segment every one of them broke in alone, if they agree
    # (outside test 7: a catalog replica empty for one country read "3 features fed by table:ad_catalog lost
    # coverage", the country named nowhere; the feature check had found each break there)
    found = {c.target: c.slice for c in (side.candidates if side is not None else ()) if c.kind == "feature"}
    where = {found.get(f) for f in covered}  # None for a covered feature the feature check did not list: no segment
    segment = where.pop() if len(where) == 1 else None
    place = f" only for {segment}" if segment else ""
    summary = f"{len(covered)} features fed by {node} {what}{place} at {hhmm(ctx)}"
    detail = (f"{node} feeds {len(fed)} feature(s), {len(covered)} of them changed ({', '.join(sorted(covered))}); "
              f"{len(changed) - len(covered)} changed feature(s) lie elsewhere; a break there explains this pattern with "
              f"probability {posterior:.2f} against {len(changed)} of {len(known)} features changing on their own.")
    return Evidence("lineage", "fail", s, summary + ".", detail=detail,
                    data={"node": node, "covered": sorted(covered), "fed": sorted(fed), "broken": sorted(broken),
                          "changed": sorted(changed)},
                    candidates=(Candidate("upstream", node, s, summary, detail=detail, change=CHANGE.get(common),
                                          slice=segment, explains=tuple(("feature", f) for f in covered)),))


def _loose_readings(ctx: Context, iso, steady: set[str]) -> dict[str, tuple[dict, str | None]]:
    """Per candidate feature (the isolation's top ``CANDIDATES``), the readings that say whether its values still
    belong to their rows, and the segment they were read in (None: all the traffic).

    The readings are the permutation readings and the partner relations (:func:`_partners`). When one segment holds
    the regression alone they are read again on that segment's rows (a join broken for one country loosens the
    feature there; over all the traffic the healthy rows dilute the drop), against two other informative features
    there (labels that left the segment are the rival explanation: ``SEGMENT_COMPARE_WITH``); a candidate the
    segment's rows cannot read (too few labels, or it carries no signal there) keeps its reading over all the
    traffic. Only candidates whose distribution held (``steady``: their drift kind is one of ``LOOSE_KINDS``) are
    read to the end: a broken one did not come loose."""
    from workbench.case.columns import LABEL
    from workbench.data.slices import slice_filter
    from workbench.model.isolation import CANDIDATES, MIN_LABELED, SEGMENT_COMPARE_WITH, decorrelation

    candidates = iso.table["feature"].head(CANDIDATES).to_list()
    tables: dict[str | None, pl.DataFrame] = {None: iso.table}
    frames: dict[str | None, tuple[pl.DataFrame, pl.DataFrame]] = {None: window_rows(ctx)}
    segment = confined_segment(ctx)
    if segment is not None:
        base, inc = (frame.filter(slice_filter(segment)) for frame in window_rows(ctx))
        if min(base[LABEL].count(), inc[LABEL].count()) >= MIN_LABELED:
            tables[segment] = ctx.cached(("decorrelation", segment), lambda: decorrelation(
                ctx.case, base, inc, [f for f in candidates if f in steady], compare_with=SEGMENT_COMPARE_WITH,
                surrogate=iso.surrogate if iso.model_free else None))
            frames[segment] = (base, inc)
    rows = {where: {r["feature"]: r for r in table.iter_rows(named=True)} for where, table in tables.items()}

    def partners(where: str | None) -> dict[str, dict[str, float]]:  # read once per place, where a candidate needs it
        return ctx.cached(("relations", where), lambda: _partners(ctx, tables[where], frames[where]))

    out = {}
    for f in candidates:
        inside = segment is not None and segment in rows and rows[segment][f].get("decorrelated_drop") is not None
        where = segment if inside else None
        out[f] = ({**rows[where][f], **partners(where).get(f, {})}, where)
    return out


def _partners(ctx: Context, table: pl.DataFrame, frames: tuple[pl.DataFrame, pl.DataFrame]) -> dict[str, dict[str, float]]:
    """Each feature's relation to the features it moved with in the baseline, in each window, on the rows the
    permutation readings in ``table`` used (:func:`workbench.data.drift.relations`). Partners are features whose
    distribution held and whose own reading does not say they came loose: features joined from the same wrong-keyed
    table keep their relation to each other."""
    from workbench.data.drift import relations

    loose: set[str] = set()
    if "decorrelated_floor" in table.columns:
        loose = set(table.filter(pl.col("decorrelated_drop") > pl.col("decorrelated_floor"))["feature"].to_list())
    steady = set(drift(ctx).table.filter(pl.col("kind") == "none")["feature"].to_list()) - loose
    return relations(*frames, ctx.case.features, steady)


def _partners_disagree(row: dict) -> bool:
    """Whether the features ``row``'s feature moved with speak against its values having come loose from their rows.

    Values with ``decorrelated_drop`` of their information gone take about that share of the feature's relation to
    its partners (:func:`_partners`) with them: under that hypothesis ``T = (rel_b - rel_i) - drop * rel_b`` is 0
    up to its noise, ``se_T = sqrt(2 se^2 + (rel_b * drop_se)^2)`` (each window's relation, and the drop's own
    error). When ``T`` is below ``-3 se_T`` the feature still moves with its row and it is the labels that stopped
    following it: with one informative feature, a segment whose labels no longer follow the inputs and a feature
    shuffled in that segment lose the same permutation loss, and only the partners tell them apart. A feature
    without partners cannot be checked this way."""
    keys = ("relation_baseline", "relation_incident", "relation_se", "decorrelated_drop", "decorrelated_drop_se")
    values = [row.get(k) for k in keys]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        return False
    rel_b, rel_i, se, drop, drop_se = (float(v) for v in values if v is not None)
    t = (rel_b - rel_i) - drop * rel_b
    return t < -3 * math.sqrt(2 * se ** 2 + (rel_b * drop_se) ** 2)


def feature_isolation(ctx: Context) -> Evidence:
    """Strength per feature: the share of the change it explains (loss share, the swap's recovery or its share of
    the prediction shift; :func:`workbench.model.isolation.isolate_features`) times the evidence *that* it changed —
    isolation says how much a feature matters, the change must be shown too. That evidence is the drift check's
    strength, or, for a feature whose distribution held (with the model, or without one its surrogate): ``from_excess`` of its
    ``decorrelated_drop`` (the share of its permutation loss that is gone beyond what every feature lost alike: its
    values no longer belong to their rows) beyond its ``decorrelated_floor`` (a tenth, or the drop's sampling error
    at a family-wise 5%: :func:`workbench.model.isolation.drop_floor`), scale 0.25, read inside the segment that
    holds the regression alone when there is one (:func:`_loose_readings`), which the cause then names, unless the
    features it moved with say it still belongs to its rows (:func:`_partners_disagree`).

    Or the population moved: a feature that moved between the windows by at least a small effect (JS distance at
    least the drift floor, organic drift included) in no form of a break (drift kind ``none`` or ``distribution``,
    and the feature check read no coverage, scale or staleness in it, not even inside a slice), that is not the
    timestamp's calendar (the label model reads the hour, so a different mix of hours would pass for inputs that
    moved), while the label rate moved and the inputs carry that move
    (:func:`~workbench.rca.checks._common.population_moved`), is a ``shift`` of strength ``from_share(score)``
    times that evidence. A ramp that began before the baseline ends moves the feature between the placebo and the
    baseline too, so its excess over organic drift stays small (dev shift/latent/5: JS 0.33, 0.21 of it before the
    baseline; labels -66%, two thirds of it with the inputs; the feature carries 86% of the change and no cause was
    named; dev shift/boolean_share/12: an excess of 0.099, a hair under the floor, kind ``none``). A logging bug
    moves the labels alone and a broken input moves no label, so neither reads as one.

    Or its values left the scale band on a minority of the rows (``out_of_band`` at least ``OUT_OF_BAND`` beyond the
    baseline's share: a parser bug that multiplies a twentieth of the values by 1,000 or more, under the distance
    floor): a ``scale`` break of evidence ``from_excess`` of that share beyond ``OUT_OF_BAND``, scale 0.02 (outside
    test 2: 5% of a session length x1e3-1e7 carried all of an 11% NE rise and no cause was named).
    """
    from workbench.data.drift import FLOOR, OUT_OF_BAND, out_of_band
    from workbench.model.isolation import CANDIDATES, isolate_features

    drifted = drift(ctx).table
    tails = {row["feature"]: out_of_band(row) for row in drifted.iter_rows(named=True)}
    # a clock's values leave the band of a short baseline's hours by the calendar alone (dev label/spurious_positives/3:
    # hour_of_week 29 % out of a two-day baseline's band), so a feature that follows the calendar there is left out
    out_of_scale = {f: S.from_excess(t, OUT_OF_BAND, 0.02) for f, t in tails.items()
                    if t >= OUT_OF_BAND and f not in calendar(ctx, follow=False)}
    kinds, js = (dict(zip(drifted["feature"], drifted[c], strict=True)) for c in ("kind", "js"))
    steady = {f for f, kind in kinds.items() if kind in LOOSE_KINDS}
    iso = ctx.cached("isolation", lambda: isolate_features(ctx.case, ctx.baseline, ctx.incident, rows=window_rows(ctx),
                                                           steady=steady))
    strengths = feature_strengths(ctx)
    table = iso.table.head(10)
    readings = _loose_readings(ctx, iso, steady)
    side = ctx.evidence_of("feature_side")
    broke = {c.target for c in side.candidates if c.change not in (None, "shift")} if side is not None else set()
    unbroken = {f for f, kind in kinds.items() if kind in ("none", "distribution") and f not in broke} - calendar(ctx).keys()
    population = population_moved(ctx)
    cands = []
    for row in iso.table.head(CANDIDATES).iter_rows(named=True):
        f = row["feature"]
        changed, change = strengths.get(f, 0.0), None
        perm, segment = readings[f]
        where = f" within {segment}" if segment else ""
        loose = S.from_excess(perm.get("decorrelated_drop"), perm.get("decorrelated_floor") or math.inf, 0.25)
        if kinds.get(f) in LOOSE_KINDS and loose > changed and not _partners_disagree(perm):
            changed, change = loose, "decorrelated"
        elif f in unbroken and out_of_scale.get(f, 0.0) > changed:
            changed, change = out_of_scale[f], "scale"
        elif f in unbroken and (js.get(f) or 0.0) >= FLOOR and population > changed:
            changed, change = population, "shift"
        s = S.from_share(row["score"]) * changed
        if s >= 0.2:
            why = (f"; shuffling it{where} raised the loss {perm['permutation_loss_baseline']:.3f} NE before, "
                   f"{perm['permutation_loss_incident']:.3f} after" if change == "decorrelated" else
                   f"; it moved (JS {js[f]:.2f}) and the label rate moved with the inputs" if change == "shift" else "")
            came = (f", came loose from its rows{where}" if change == "decorrelated" else
                    ", shifted with the population (the labels moved with the inputs)" if change == "shift" else
                    f", its values out of scale on {tails[f]:.1%} of the rows" if change == "scale" else "")
            why = why or (f"; {tails[f]:.1%} more of its values lie ten times beyond its baseline range"
                          if change == "scale" else "")
            cands.append(Candidate("feature", f, s, f"{f} explains {row['score']:.0%} of the change{came}",
                                   detail=f"{iso.method}: {f} explains {row['score']:.0%} of the change{why}", change=change,
                                   slice=segment if change == "decorrelated" else None))
    label = "model" if not iso.model_free else "surrogate (model-free)"
    summary = (f"By {label} attribution, {table['feature'][0]} explains the most of the change ({table['score'][0]:.0%})."
               if table.height else "No feature attribution available.")
    return Evidence("feature_isolation", "fail" if cands else "pass", max((c.strength for c in cands), default=0.0), summary,
                    detail=str(iso), data={"plot": plotspec.bars(table["feature"].to_list(), table["score"].to_list(),
                                                                 title=f"Share of the change explained ({label})", y="share")},
                    candidates=tuple(cands))
