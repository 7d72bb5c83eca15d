"""Feature-side checks: which features broke, do they differ from training, how much of the change each explains,
and which upstream node feeds the ones that broke together."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from workbench.rca import _strength as S
from workbench.rca import plotspec
from workbench.rca.checks._common import BROKEN, WORDS, describe_break, drift, feature_strengths, hhmm
from workbench.rca.evidence import Candidate, Evidence
from workbench.windows import iso

if TYPE_CHECKING:
    from workbench.rca.context import Context

__all__ = ["feature_isolation", "feature_side", "lineage", "training_skew"]


def feature_side(ctx: Context) -> Evidence:
    """Strength per feature: its drift severity (effect size in robust σ) through ``from_z``.

    When one feature's break concentrates in a single slice value, the candidate is
    narrowed to it (``slice`` field), e.g. ``platform=android``.
    """
    from workbench.data.drift import feature_by_slice, feature_timeline

    fd = drift(ctx)
    strengths = feature_strengths(ctx)
    table = fd.table.sort("severity", descending=True)
    cands = []
    for row in table.head(5).iter_rows(named=True):
        s = strengths[row["feature"]]
        if s < 0.2:
            continue
        what = WORDS.get(row["kind"], "changed")
        where = None
        if ctx.case.slices and s >= BROKEN:
            by = ctx.cached(("feature_by_slice", row["feature"]),
                            lambda f=row["feature"]: feature_by_slice(ctx.case, f, ctx.baseline, ctx.incident))
            where = by.top["slice"] if by.concentrated and by.top else None
        place = f" only for {where}" if where else ""
        cands.append(Candidate("feature", row["feature"], s, f"{row['feature']} {what}{place} at {hhmm(ctx)}",
                               detail=f"{row['feature']}: {describe_break(row)} (severity {row['severity']:.2f})",
                               slice=where))
    top = table.head(12)
    plots = []
    if cands:
        names = [c.target for c in cands[:3]]
        tl = ctx.cached(("feature_timeline", tuple(names)), lambda: feature_timeline(ctx.case, names))
        x = [iso(t) for t in tl.filter(pl.col("feature") == names[0])["window"].to_list()]
        plots.append(plotspec.timeseries(x, {f: tl.filter(pl.col("feature") == f)["coverage"].to_list() for f in names},
                                         title="Coverage (share of non-null values) per hour", y="coverage",
                                         onset=iso(ctx.onset_time) if ctx.onset_time else None))
    verdict = "fail" if any(c.strength >= BROKEN for c in cands) else "warn" if cands else "pass"
    broken = [c for c in cands if c.strength >= BROKEN]
    summary = (f"{len(broken)} feature(s) broke: " + ", ".join(c.summary for c in broken[:3]) + "." if broken else
               "No feature changed beyond organic drift." if not cands else
               f"Weak changes only; strongest: {cands[0].summary}.")
    return Evidence("feature_side", verdict, max((c.strength for c in cands), default=0.0), summary, detail=str(fd),
                    data={"plot": plotspec.bars(top["feature"].to_list(), top["severity"].to_list(),
                                                title="Features ranked by severity (JS distance beyond organic drift)", y="severity",
                                                highlight=[c.target for c in broken]), "plots": plots},
                    candidates=tuple(cands))


def training_skew(ctx: Context) -> Evidence:
    """Supporting evidence only: a feature skewed against training in the incident but not the baseline.

    Strength: half the ``from_js`` of the *increase* in JS distance to training, so it can
    confirm a break but not outvote the drift check.
    """
    from workbench.data.drift import training_skew as skew

    before = ctx.cached("skew_baseline", lambda: skew(ctx.case, ctx.baseline)).table
    after = ctx.cached("skew_incident", lambda: skew(ctx.case, ctx.incident)).table
    joined = after.join(before.select("feature", pl.col("severity").alias("before")), on="feature", how="left").with_columns(
        (pl.col("severity") - pl.col("before").fill_null(0.0)).alias("increase")).sort("increase", descending=True)
    cands = tuple(Candidate("feature", r["feature"], 0.5 * S.from_js(r["increase"]),
                            f"{r['feature']} no longer matches the training data",
                            detail=f"JS distance to training.parquet rose by {r['increase']:.2f} at the onset")
                  for r in joined.head(5).iter_rows(named=True) if S.from_js(r["increase"]) > 0.2)
    summary = (f"{len(cands)} feature(s) started to differ from training: " + ", ".join(c.target for c in cands) + "."
               if cands else "No feature moved away from the training data at the onset.")
    top = joined.head(10)
    return Evidence("training_skew", "warn" if cands else "pass", max((c.strength for c in cands), default=0.0), summary,
                    data={"plot": plotspec.bars(top["feature"].to_list(), top["increase"].to_list(),
                                                title="Increase in training-serving skew (JS distance)", y="ΔJS")}, candidates=cands)


def lineage(ctx: Context) -> Evidence:
    """The upstream node that best explains the features that broke together.

    Broken features are those with strength ≥ ``BROKEN``. For every table or pipeline,
    precision = broken share of the features it feeds, recall = share of the broken
    features it feeds; the node with the best F1 wins, ties going to the most specific
    node (fewest features fed, then the one closest to the features). It needs at
    least two broken features: one feature's break is best described as that feature.
    Strength: F1 × the mean strength of the features it explains.
    """
    graph = ctx.case.lineage
    assert graph is not None
    strengths = feature_strengths(ctx)
    broken = {f: s for f, s in strengths.items() if s >= BROKEN}
    if len(broken) < 2:
        return Evidence("lineage", "pass", 0.0,
                        "Fewer than two features broke, so no shared upstream cause is needed." if broken else
                        "No feature broke, so no upstream node is implicated.")
    known = set(ctx.case.features)
    best = None
    for node in graph.kinds:
        if node.startswith("feature:"):
            continue
        fed = graph.features_of(node) & known
        covered = fed & broken.keys()
        if len(covered) < 2:
            continue
        precision, recall = len(covered) / len(fed), len(covered) / len(broken)
        f1 = 2 * precision * recall / (precision + recall)
        key = (round(f1, 9), -len(fed), len(graph.ancestors(node)))
        if best is None or key > best[0]:
            best = (key, node, covered, fed, f1)
    if best is None:
        return Evidence("lineage", "pass", 0.0, f"The {len(broken)} broken features share no upstream node.")
    _, node, covered, fed, f1 = best
    kinds = {drift(ctx).table.filter(pl.col("feature") == f)["kind"][0] for f in covered}
    what = WORDS.get(next(iter(kinds)), "broke") if len(kinds) == 1 else "broke"
    s = f1 * sum(broken[f] for f in covered) / len(covered)
    summary = f"{len(covered)} features fed by {node} {what} at {hhmm(ctx)}"
    detail = (f"{node} feeds {len(fed)} feature(s), {len(covered)} of them broke ({', '.join(sorted(covered))}); "
              f"{len(broken) - len(covered)} broken feature(s) lie elsewhere.")
    return Evidence("lineage", "fail", s, summary + ".", detail=detail,
                    data={"node": node, "covered": sorted(covered), "fed": sorted(fed), "broken": sorted(broken)},
                    candidates=(Candidate("upstream", node, s, summary, detail=detail,
                                          explains=tuple(("feature", f) for f in covered)),))


def feature_isolation(ctx: Context) -> Evidence:
    """Strength per feature: the share of the NE regression recovered by swapping it back (with a model), or
    its share of the prediction shift (surrogate), times how much the feature itself drifted — isolation says
    *how much* a feature matters, drift says *that* it changed; both must hold.
    """
    from workbench.model.isolation import isolate_features

    iso = ctx.cached("isolation", lambda: isolate_features(ctx.case, ctx.baseline, ctx.incident))
    strengths = feature_strengths(ctx)
    table = iso.table.head(10)
    cands = []
    for row in iso.table.head(3).iter_rows(named=True):
        s = S.from_share(row["score"]) * strengths.get(row["feature"], 0.0)
        if s >= 0.2:
            cands.append(Candidate("feature", row["feature"], s, f"{row['feature']} explains {row['score']:.0%} of the change",
                                   detail=f"{iso.method}: {row['feature']} explains {row['score']:.0%} of the change"))
    label = "model" if not iso.model_free else "surrogate (model-free)"
    summary = (f"By {label} attribution, {table['feature'][0]} explains the most of the change ({table['score'][0]:.0%})."
               if table.height else "No feature attribution available.")
    return Evidence("feature_isolation", "fail" if cands else "pass", max((c.strength for c in cands), default=0.0), summary,
                    detail=str(iso), data={"plot": plotspec.bars(table["feature"].to_list(), table["score"].to_list(),
                                                                 title=f"Share of the change explained ({label})", y="share")},
                    candidates=tuple(cands))
