"""Is the regression confined to one traffic segment?"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import polars as pl

from workbench.data.slices import MINORITY
from workbench.rca import _strength as S
from workbench.rca import plotspec
from workbench.rca.checks._common import (
    CHANGE,
    NEW_AGAINST_JOINED,
    broke_in_new_segment,
    change_words,
    coverage_delta,
    drift,
    feature_slices,
    hhmm,
    kind_inside,
    slices,
)
from workbench.rca.checks.quality import SHORT as NAMES
from workbench.rca.evidence import Candidate, Evidence

if TYPE_CHECKING:
    from workbench.rca.context import Context

__all__ = ["slice_check"]


def slice_check(ctx: Context) -> Evidence:
    """Strength: the share of the regression the top slice holds (confinement) × its significance.

    The search follows the metric that regressed most (NE when that is AUC). When the
    whole traffic showed no regression and the detector found it in one segment only
    (``ctx.segment``), that segment holds all of it. A fallback: the ranking scales it down
    by the strongest other explanation, so a segment stands as the cause only when
    nothing else explains the regression.
    """
    search = slices(ctx)
    top = search.top
    table = search.table.head(10)
    name = NAMES.get(search.metric, search.metric)
    plot = plotspec.bars(table["slice"].to_list(), table["delta"].to_list(), title=f"Change in {name} by slice (incident − baseline)",
                         y="Δ", highlight=[top["slice"]] if top else [])
    if top is None:
        return Evidence("slice", "pass", 0.0, "No segment regressed more than the rest of the traffic.", detail=str(search),
                        data={"plot": plot})
    # Found in one segment only (the rest of the traffic showed no regression at all): that segment holds all of it,
    # whichever slice the search ranks first on the whole traffic's metric.
    if ctx.segment is not None and ctx.segment in set(search.table["slice"]):
        top = search.table.filter(pl.col("slice") == ctx.segment).row(0, named=True)
    alone = ctx.segment is not None and top["slice"] == ctx.segment
    share = 1.0 if alone else S.from_share(top["explained_share"])
    if not alone and top["share"] >= MINORITY:  # most of the traffic is not a segment: the regression is everywhere
        s = 0.0
        summary = (f"No traffic segment holds the regression: it is largest in {top['slice']}, which is {top['share']:.0%} of "
                   f"the traffic ({name} {top['baseline_value']:.3f} → {top['incident_value']:.3f}).")
    else:
        counter = search.counter
        s = share if search.confined or alone or counter else 0.5 * share  # not confined: the rest regressed too
        joined = f" ({NEW_WORDS}: against the rest of the traffic before it)" if top.get("new") else ""
        summary = (f"The regression concentrates in {top['slice']} ({top['share']:.0%} of traffic): {name} "
                   f"{top['baseline_value']:.3f} → {top['incident_value']:.3f}{joined}; it holds {share:.0%} of the "
                   "total regression")
        if counter is not None:
            summary += (f", and {counter['slice']} ({counter['share']:.0%}) moved the other way, "
                        f"{counter['baseline_value']:.3f} → {counter['incident_value']:.3f}: two segments moving apart "
                        "while the rest held point to rows mixed up between them (a swapped mapping) or a change made "
                        "per segment.")
        else:
            summary += (" and the rest of the traffic did not regress." if search.confined or alone
                        else ", but the rest regressed too.")
    broken = _broken_there(ctx, top["slice"], share) if s > 0 else []
    arrived = _joined(ctx, top, s, summary, broken) if broken else None
    if arrived is not None:
        return Evidence("slice", "warn", arrived.strength, arrived.detail or summary, detail=str(search),
                        data={"plot": plot}, candidates=(arrived,))
    verdict = "warn" if s >= 0.2 else "pass"
    cands: tuple[Candidate, ...] = ()
    if s > 0:
        reason = (f"{top['slice']} moved one way and {search.counter['slice']} the other" if search.counter
                  else f"the regression is confined to {top['slice']}" + (f", {NEW_WORDS}" if top.get("new") else ""))
        new = top.get("new") and not search.counter  # two segments moving apart have a step of their own
        cands = (Candidate("slice", top["slice"], s, reason, detail=summary, fallback=True,
                           situation="new" if new else None), *_other_way(search, top, s, summary), *broken)
    return Evidence("slice", verdict, s, summary, detail=str(search), data={"plot": plot}, candidates=cands)


def _other_way(search, top: dict, strength: float, summary: str) -> tuple[Candidate, ...]:
    """The segment that moved the other way (:attr:`SliceSearch.counter`) as a cause beside the top one, weighed by
    the size of its own move against the top slice's (log scale: the calibration ratio's two directions are alike)."""
    c = search.counter
    if c is None:
        return ()
    size = abs(math.log(c["incident_value"] / c["baseline_value"]))
    ref = abs(math.log(top["incident_value"] / top["baseline_value"]))
    return (Candidate("slice", c["slice"], strength * min(1.0, size / ref) if ref > 0 else strength,
                      f"{c['slice']} moved the other way", detail=summary, fallback=True),)


SUSPECTS = 5  # features, by drift severity on the whole traffic, checked for a break inside a confined segment
JOINED = 2.0  # a segment whose rows at least doubled against the rest's: at least half its incident rows are new
JOINED_WORDS = "traffic joined"  # how a joined-traffic cause begins
NEW_WORDS = "new in the incident"  # how a segment new in the incident is named


def _joined(ctx: Context, top: dict, strength: float, summary: str, moved: list[Candidate]) -> Candidate | None:
    """Traffic that joined the segment, or None: its rows rose at least ``JOINED`` times against the rest of the
    traffic's (``volume_ratio``), and the features that moved there moved only there (``moved``, from
    :func:`_broken_there`). A
    pipeline that breaks leaves the row count alone; rows that joined (bots, a new source, a new placement) bring their
    own values, which the feature checks read as breaks confined to the segment (outside test 2: Brazil's rows x4 for
    18 hours of near-zero-click bot traffic read as six broken features and a backfill of a healthy pipeline).

    The segment is then the cause, not a fallback, and it explains those features and the lineage nodes above them:
    their moves are the new rows' values. Its strength is the noisy-OR of the segment's own (``strength``, its share
    of the regression) with those features', since each moved feature is evidence of rows unlike the segment's own.
    """
    volume = top.get("volume_ratio")
    if top.get("new") or volume is None or not volume >= JOINED:
        return None
    features = [c.target for c in moved]
    above = set().union(*(ctx.case.lineage.upstream_of_feature(f) for f in features)) if ctx.case.lineage else set()
    s = 1.0 - (1.0 - strength) * math.prod(1.0 - c.strength for c in moved)
    words = (f"{JOINED_WORDS} {top['slice']} at {hhmm(ctx)}: its rows rose x{volume:.1f} against the rest of the traffic, "
             f"with values unlike its own before ({', '.join(features[:3])}{' ...' if len(features) > 3 else ''} moved "
             "there only): new rows (bots, a new source or placement), not a pipeline that broke")
    return Candidate("slice", top["slice"], s, words, detail=f"{words}. {summary}", situation="joined",
                     explains=tuple(("feature", f) for f in features) + tuple(("upstream", n) for n in sorted(above)))


def _parts(description: str) -> set[str]:
    return set(description.split(" & "))


def _broken_there(ctx: Context, segment: str, share: float) -> list[Candidate]:
    """A feature that broke inside the segment that holds the regression, and not in the rest of the traffic.

    A feature broken in one segment is diluted on the whole traffic (its drift there can stay under the floor), so the
    segment is found first and the feature not at all. For the ``SUSPECTS`` numeric features that drifted most on the
    whole traffic, :func:`workbench.data.drift.feature_by_slice` compares baseline and incident inside each slice and
    outside it; a feature whose break concentrates in the segment (or in a part of it, or the segment in a part of its
    slice) is a candidate with that slice: strength ``from_js(JS inside - JS outside)`` (the break beyond the rest of
    the traffic's drift) times the share of the regression the segment holds. It explains the segment, which is where
    it broke, so the ranking demotes the segment by it. A segment new in the incident has no baseline of its own, so its
    rows are compared with the traffic it joined, and only a break (``BREAKS``: a default, a unit, a frozen value)
    counts there: a new population's own mix of values is not one (outside test 5, ``i17``: a partner source serving
    f_ctx_relevance as 0 on all its rows was named without its slice).
    """
    table = drift(ctx).table.filter(pl.col("type") == "numeric").sort("severity", descending=True, nulls_last=True)
    out = []
    for f in table["feature"].head(SUSPECTS).to_list():
        by = feature_slices(ctx, f)
        where = by.top
        if not by.concentrated or where is None or not (_parts(where["slice"]) <= _parts(segment)
                                                         or _parts(segment) <= _parts(where["slice"])):
            continue
        strength = S.from_js((where["js"] or 0.0) - (where["js_rest"] or 0.0)) * share
        if strength <= 0:
            continue
        if where.get("new") and not broke_in_new_segment(ctx, f, where["slice"]):
            continue
        kind = kind_inside(ctx, f, where["slice"])
        change = CHANGE.get(kind)
        what = change_words("default" if kind == "default" else change, coverage_delta(where), "broke")
        joined = f" ({NEW_AGAINST_JOINED})" if where.get("new") else ""
        out.append(Candidate("feature", f, strength, f"{f} {what} only for {where['slice']}{joined} at "
                             f"{hhmm(ctx)}", detail=f"{by} (the segment holding the regression: {segment})",
                             slice=where["slice"], change=change, explains=(("slice", segment),)))
    return out
