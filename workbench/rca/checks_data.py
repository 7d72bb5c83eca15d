"""Checks on the data side: quality and onset, labels, features, lineage, calibration, slices.

Strengths follow :mod:`workbench.rca._strength`: robust z-scores map through
``from_z`` (0 up to 3σ), shares are used as they are, and a check that can only
stand when others are silent is weakened by them (``weaken``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import polars as pl

from workbench import plotspec
from workbench.rca import _strength as S
from workbench.rca.evidence import Candidate, Evidence
from workbench.windows import iso

if TYPE_CHECKING:
    from workbench.rca.context import Context

__all__ = ["calibration", "feature_side", "label_side", "lineage", "prediction_quality", "slice_check", "training_skew"]

BROKEN = 0.5  # a feature with strength at least this counts as broken for the lineage walk
WORDS = {"coverage": "lost coverage", "scale": "changed scale", "stale": "went stale", "distribution": "drifted"}


# ---------------------------------------------------------------- shared, cached analysis
def drift(ctx: Context):
    from workbench.drift import feature_drift

    return ctx.cached("feature_drift", lambda: feature_drift(ctx.case, ctx.baseline, ctx.incident))


def feature_strengths(ctx: Context) -> dict[str, float]:
    """Strength per feature from the drift ranking's severity (JS distance beyond organic drift), via ``from_js``."""
    if not ctx.case.features:
        return {}

    def compute() -> dict[str, float]:
        table = drift(ctx).table
        return {row["feature"]: S.from_js(row["severity"]) for row in table.select("feature", "severity").iter_rows(named=True)}

    return ctx.cached("feature_strengths", compute)


def slices(ctx: Context):
    from workbench.slices import find_slices

    return ctx.cached("find_slices", lambda: find_slices(ctx.case, ctx.baseline, ctx.incident))


def confined_share(ctx: Context) -> float:
    """The share of the regression held by the top slice when it holds it alone (else 0)."""
    if not ctx.case.slices:
        return 0.0
    search = slices(ctx)
    top = search.top
    return S.from_share(top["explained_share"]) if top is not None and search.confined else 0.0


def describe_break(row: dict) -> str:
    """One phrase with the numbers behind a feature's break, for the evidence list."""
    kind = row["kind"]
    if kind == "coverage":
        return f"coverage {row['coverage_baseline']:.0%} → {row['coverage_incident']:.0%}"
    if kind == "scale" and row.get("scale_ratio"):
        return f"typical magnitude ×{row['scale_ratio']:.3g} (out-of-scale share {row['out_of_scale_incident']:.0%})"
    if kind == "stale":
        return (f"top value's share {row['top_share_baseline']:.0%} → {row['top_share_incident']:.0%}, "
                f"distinct values {row['distinct_baseline']:.0f} → {row['distinct_incident']:.0f}")
    return f"JS distance {row['js']:.2f} (usual {row['js_usual']:.2f}), PSI {row['psi']:.2f}"


def _hhmm(ctx: Context) -> str:
    return f"{ctx.onset_time:%H:%M}" if ctx.onset_time else "the onset"


def _windows_shade(ctx: Context) -> list:
    return [[iso(ctx.baseline.start), iso(ctx.baseline.end), "baseline"], [iso(ctx.incident.start), iso(ctx.incident.end), "incident"]]


# ---------------------------------------------------------------- checks
def prediction_quality(ctx: Context) -> Evidence:
    """Strength: the onset's robust severity (σ above the hour-of-day baseline) through ``from_z``."""
    on = ctx.onset
    series = on.series
    plot = plotspec.timeseries(
        [iso(t) for t in series["window"].to_list()], {"normalized entropy": series["normalized_entropy"].to_list()},
        title="Normalized entropy per hour", y="NE", onset=iso(on.onset) if on.detected and on.onset else None,
        shade=_windows_shade(ctx),
        estimated_from=iso(ctx.case.end - timedelta(hours=on.label_delay_hours)) if on.label_delay_hours else None)
    others = [plotspec.timeseries([iso(t) for t in series["window"].to_list()],
                                  {m.replace("_", " "): series[m].to_list() for m in cols},
                                  title=title, onset=plot["onset"], shade=plot["shade"], estimated_from=plot["estimated_from"])
              for cols, title in ((["calibration_ratio"], "Calibration ratio (Σ prediction / Σ label)"),
                                  (["prediction_mean", "label_rate"], "Prediction mean and label rate"))
              if all(c in series.columns for c in cols)]
    change = on.current_value - on.baseline_value
    pct = change / on.baseline_value if on.baseline_value else 0.0
    where = f" in {ctx.segment} (the whole traffic stayed within its noise)" if ctx.segment else ""
    if ctx.segment:
        plot["title"] = f"Normalized entropy per hour in {ctx.segment}"
    if on.detected:
        summary = (f"Normalized entropy{where} rose from {on.baseline_value:.3f} to {on.current_value:.3f} ({pct:+.1%}) "
                   f"from {on.onset:%Y-%m-%d %H:%M} UTC, {on.severity:.1f}σ beyond its normal variation.")
        return Evidence("prediction_quality", "fail", S.from_z(on.severity), summary, detail=on.method,
                        data={"plot": plot, "plots": others, "onset": on.to_dict()})
    summary = (f"Normalized entropy stayed within its normal variation ({on.baseline_value:.3f} → {on.current_value:.3f}, "
               f"{on.severity:.1f}σ).")
    return Evidence("prediction_quality", "pass", 0.0, summary, detail=on.method, data={"plot": plot, "plots": others})


def label_side(ctx: Context) -> Evidence:
    """Strength: label-rate shift z, weakened by a prediction shift, broken features and a confined slice.

    A logging or join bug moves labels and leaves predictions and features alone; if the
    label change sits in one segment only, the slice check owns it instead.
    """
    from workbench.labels import label_shift

    ls = ctx.cached("label_shift", lambda: label_shift(ctx.case, ctx.baseline, ctx.incident))
    top_feature = max(feature_strengths(ctx).values(), default=0.0)
    confined = confined_share(ctx)
    s = S.weaken(S.from_z(abs(ls.label_z)), S.from_z(abs(ls.prediction_z)), top_feature, confined)
    summary = (f"Label rate {ls.label_rate_baseline:.2%} → {ls.label_rate_incident:.2%} ({ls.label_z:+.1f}σ) while the "
               f"prediction mean went {ls.prediction_mean_baseline:.2%} → {ls.prediction_mean_incident:.2%} ({ls.prediction_z:+.1f}σ).")
    verdict = "fail" if s >= BROKEN else "warn" if s >= 0.2 else "pass"
    label = ctx.case.columns.label
    cands = (Candidate("label", label, s, f"labels changed on their own at {_hhmm(ctx)}: {summary[0].lower()}{summary[1:]}",
                       detail=summary),) if s > 0 else ()
    return Evidence("label_side", verdict, s, summary, detail=str(ls), data={"plot": plotspec.bars(
        ["label rate", "prediction mean"], [ls.label_z, ls.prediction_z], title="Shift at the onset (σ)", y="σ")}, candidates=cands)


def feature_side(ctx: Context) -> Evidence:
    """Strength per feature: its drift severity (effect size in robust σ) through ``from_z``.

    When one feature's break concentrates in a single slice value, the candidate is
    narrowed to it (``slice`` field), e.g. ``platform=android``.
    """
    from workbench.drift import feature_by_slice, feature_timeline

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
        cands.append(Candidate("feature", row["feature"], s, f"{row['feature']} {what}{place} at {_hhmm(ctx)}",
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
    from workbench.drift import training_skew as skew

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
    summary = f"{len(covered)} features fed by {node} {what} at {_hhmm(ctx)}"
    detail = (f"{node} feeds {len(fed)} feature(s), {len(covered)} of them broke ({', '.join(sorted(covered))}); "
              f"{len(broken) - len(covered)} broken feature(s) lie elsewhere.")
    return Evidence("lineage", "fail", s, summary + ".", detail=detail,
                    data={"node": node, "covered": sorted(covered), "fed": sorted(fed), "broken": sorted(broken)},
                    candidates=(Candidate("upstream", node, s, summary, detail=detail,
                                          explains=tuple(("feature", f) for f in covered)),))


def calibration(ctx: Context) -> Evidence:
    """Strength: the prediction-mean shift z with ranking held (AUC), weakened by every other explanation.

    A calibration shift moves predictions in scale while features, labels and the
    snapshot stay put; with a model, logged predictions also stop matching what the
    serving snapshot computes from the logged features (serving consistency).
    """
    from workbench.calibration import calibration_shift

    cs = ctx.cached("calibration_shift", lambda: calibration_shift(ctx.case, ctx.baseline, ctx.incident))
    others = [max(feature_strengths(ctx).values(), default=0.0), ctx.cached("snapshot_strength", lambda: 0.0)]
    label = ctx.evidence.get("label_side")
    if label is not None:
        others.append(label.score)
    s = S.weaken(S.from_z(abs(cs.calibration_z)), S.from_z(max(cs.auc_drop_z, 0.0)), *others)
    serving = None
    if ctx.has("model"):
        from workbench.rescore import serving_consistency

        serving = ctx.cached("serving_consistency", lambda: serving_consistency(ctx.case, ctx.baseline, ctx.incident))
    detail = str(cs) + (f"; {serving}" if serving is not None else "")
    if serving is not None and serving.changed > 0:
        s = 1 - (1 - s) * (1 - S.from_z(serving.changed / max(serving.gap_baseline, 1e-3)))
    summary = (f"Calibration ratio {cs.calibration_ratio_baseline:.3f} → {cs.calibration_ratio_incident:.3f} while AUC "
               f"{cs.auc_baseline:.3f} → {cs.auc_incident:.3f}.")
    rel_b, rel_i = cs.reliability_baseline, cs.reliability_incident
    plot = plotspec.table(["bin", "mean prediction (baseline)", "label rate (baseline)", "mean prediction (incident)",
                           "label rate (incident)"],
                          [[i, *a, *b] for i, (a, b) in enumerate(zip(rel_b.pairs(), rel_i.pairs(), strict=False))],
                          title="Reliability: mean prediction vs label rate per bin (equal labeled mass)")
    verdict = "fail" if s >= BROKEN else "warn" if s >= 0.2 else "pass"
    cands = (Candidate("calibration", "calibration", s, f"predictions shifted in scale at {_hhmm(ctx)} with inputs and "
                       f"snapshot unchanged ({summary[0].lower()}{summary[1:-1]})", detail=detail),) if s > 0 else ()
    return Evidence("calibration", verdict, s, summary, detail=detail, data={"plot": plot}, candidates=cands)


def slice_check(ctx: Context) -> Evidence:
    """Strength: the share of the regression the top slice holds (confinement) × its significance.

    A fallback: the ranking scales it down by the strongest other explanation, so a
    segment stands as the cause only when nothing else explains the regression.
    """
    search = slices(ctx)
    top = search.top
    table = search.table.head(10)
    plot = plotspec.bars(table["slice"].to_list(), table["delta"].to_list(), title="Change in NE by slice (incident − baseline)",
                         y="Δ NE", highlight=[top["slice"]] if top else [])
    if top is None:
        return Evidence("slice", "pass", 0.0, "No segment regressed more than the rest of the traffic.", detail=str(search),
                        data={"plot": plot})
    share = S.from_share(top["explained_share"])
    s = share if search.confined else 0.5 * share  # not confined: the rest of the traffic regressed too
    summary = (f"The regression concentrates in {top['slice']} ({top['share']:.0%} of traffic): NE {top['baseline_value']:.3f} → "
               f"{top['incident_value']:.3f}; it holds {share:.0%} of the total regression"
               + (" and the rest of the traffic did not regress." if search.confined else ", but the rest regressed too."))
    verdict = "warn" if s >= 0.2 else "pass"
    return Evidence("slice", verdict, s, summary, detail=str(search), data={"plot": plot},
                    candidates=(Candidate("slice", top["slice"], s, f"the regression is confined to {top['slice']}",
                                          detail=summary, fallback=True),) if s > 0 else ())
