"""Did predictions move in scale while inputs and snapshot did not?"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import polars as pl

from workbench.rca import _strength as S
from workbench.rca import plotspec
from workbench.rca.checks._common import (
    BROKEN,
    CHANGED,
    calibration_reading,
    confined_share,
    coverage_delta,
    drift,
    feature_strengths,
    hhmm,
    window_rows,
)
from workbench.rca.evidence import Candidate, Evidence

if TYPE_CHECKING:
    from workbench.data.calibration import RowsCalibration
    from workbench.model.rescore import ServingConsistency, UnexplainedShift
    from workbench.rca.context import Context

__all__ = ["calibration", "came_loose", "served_off_model", "unexplained_of"]


def calibration(ctx: Context) -> Evidence:
    """Strength: the calibration ratio's move, judged by effect size and by *who* moved, weakened by every other
    explanation.

    ``from_z`` of its z (significance) times ``from_excess`` of ``|Δ ln ratio|`` beyond 5% (scale 10%: size), times
    the share of that move made by the predictions rather than the labels,
    ``|Δ ln mean p| / (|Δ ln mean p| + |Δ ln label rate|)``: a label incident or a segment whose
    clicks collapsed moves the ratio through the labels and is not a calibration shift. A
    ranking that got worse (AUC down by more than 0.005 and 3 SE) is not one either. A
    calibration shift moves predictions in scale while features, labels and the snapshot
    stay put; with a model, logged predictions also stop matching what the serving
    snapshot computes from the logged features (serving consistency), which is direct evidence.

    Without a model, a broken feature that moved the predictions does not by itself rule out a calibration shift
    beside it: the counterfactual :func:`workbench.model.rescore.unexplained_shift` measures the part of the
    prediction move no input explains. When it is usable (``UnexplainedShift.usable``), the features' strength no
    longer weakens the calibration; instead the strength is capped by that unexplained part beyond the surrogate's
    own error (``margin``): ``from_z`` of its z times ``from_excess`` of its size (as the ratio's, in logits). The
    worse ranking weakens it only in the share of the move the inputs do not explain (a broken input that moved the
    predictions also costs ranking). A residual *along* the inputs' move is weakened by the broken features in the
    share of the move they explain: a tree surrogate does not extrapolate, so it follows an input pushed to the edge
    of what the baseline held only part of the way (two inputs x1000 moved the predictions by 6.5 logits and left
    1.0 unexplained), and a calibration shift in that direction is not told apart from that attenuation without the
    model. A residual *against* the inputs' move cannot be attenuation and keeps its strength (a feature that lost
    coverage pushed the predictions down while a calibration change pushed them up).

    A feature that lost coverage (nulls, or a default served in place of its values) leaves the rows that kept their
    values as they were. On those rows (:func:`_untouched`) a calibration shift beside the break shows undiluted, and
    the break explains none of it: there the strength is judged as above (size, significance, who moved, a worse
    ranking on those rows) without the broken features' weakening, and the larger of the two readings stands. Where
    the rows the break spared show no move, the break explains the ratio's move, and that reading is near 0.
    """
    from workbench.data.calibration import moved_by_predictions

    cs = calibration_reading(ctx)
    # the other explanations, read from the evidence those checks returned (run now if they have not run yet)
    broken_feature = max(feature_strengths(ctx).values(), default=0.0)
    others = [ev.score for ev in (ctx.evidence_of("model_side"), ctx.evidence_of("served_beside"), ctx.evidence_of("label_side"))
              if ev is not None]
    by_predictions = moved_by_predictions(math.log1p(cs.prediction_change), math.log1p(cs.label_rate_change))
    size = _size(math.log(cs.calibration_ratio_incident / cs.calibration_ratio_baseline)
                 if cs.calibration_ratio_baseline > 0 and cs.calibration_ratio_incident > 0 else 0.0)
    ranking_worse = _ranking_worse(cs.auc_baseline - cs.auc_incident, cs.auc_drop_z)
    raw = S.from_z(abs(cs.calibration_z)) * size * by_predictions
    unexplained = unexplained_of(ctx) if (raw > 0 or ranking_worse > 0) and not ctx.has("model") else None
    # a broken input weakens it: its rows crowd where the baseline was thin and the surrogate least sure (two inputs
    # x1000, dev multi/two_features/0: the residual variance grew by 0.11 of the logit's on the rows still in range);
    # so does a segment that holds the regression alone: the segment is the finding, and its own change of scale
    # spreads the residual inside its cells (outside test 1: a temperature change inside one country, 0.16)
    loose = S.weaken(came_loose(unexplained), broken_feature, confined_share(ctx), *others)
    if unexplained is None:
        s = S.weaken(raw, ranking_worse, broken_feature, *others)
    else:
        own = S.from_z(unexplained.z) * _size(unexplained.margin)
        # a residual along the inputs' move may be the surrogate's attenuation of it (trees do not extrapolate); one
        # against it cannot be
        along = unexplained.unexplained * unexplained.explained > 0
        attenuation = broken_feature * (1.0 - unexplained.share) if along else 0.0
        s = S.weaken(min(raw, own * by_predictions), ranking_worse * unexplained.share, attenuation, *others)
    spared = _untouched(ctx) if raw > 0 else None
    if spared is not None:
        alone = S.from_z(abs(spared.z)) * _size(spared.log_change) * spared.by_predictions
        s = max(s, S.weaken(alone, _ranking_worse(spared.auc_baseline - spared.auc_incident, spared.auc_drop_z), *others))
    off_model, serving = served_off_model(ctx)
    detail = (str(cs) + (f"; {serving}" if serving is not None else "") + (f"; {unexplained}" if unexplained else "")
              + (f"; {spared}" if spared is not None else ""))
    by_scale = s
    s = 1 - (1 - s) * (1 - off_model)
    scale_only = s
    s = 1 - (1 - s) * (1 - loose)
    head = (f"Calibration ratio {cs.calibration_ratio_baseline:.3f} → {cs.calibration_ratio_incident:.3f} while AUC "
            f"{cs.auc_baseline:.3f} → {cs.auc_incident:.3f}")
    summary = head + "."
    if loose >= 0.2 and unexplained is not None:
        summary += (f" The served predictions came loose from their logged inputs: the inputs explain "
                    f"{unexplained.came_loose:.0%} less of their variance than before (z {unexplained.came_loose_z:.0f}).")
    rel_b, rel_i = cs.reliability_baseline, cs.reliability_incident
    plot = plotspec.table(["bin", "mean prediction (baseline)", "label rate (baseline)", "mean prediction (incident)",
                           "label rate (incident)"],
                          [[i, *a, *b] for i, (a, b) in enumerate(zip(rel_b.pairs(), rel_i.pairs(), strict=False))],
                          title="Reliability: mean prediction vs label rate per bin (equal labeled mass)")
    verdict = "fail" if s >= BROKEN else "warn" if s >= 0.2 else "pass"
    if off_model > max(by_scale, loose) and serving is not None:
        where = (f"median gap {serving.gap_baseline:.2f} logits before, {serving.gap_incident:.2f} after"
                 if serving.off_incident >= 0.5 else
                 f"on {serving.off_incident:.0%} of the rows, {serving.off_baseline:.0%} before, beyond the baseline's "
                 f"gap of {serving.tolerance:.3f} logits")
        reason = (f"the served predictions stopped matching what the serving snapshot computes from the logged inputs at "
                  f"{hhmm(ctx)} ({where}; {head[0].lower()}{head[1:]}): the serving path after the model changed (a "
                  "calibration or post-processing layer, a fallback)")
    elif loose > scale_only and unexplained is not None:
        reason = (f"the served predictions came loose from their logged inputs at {hhmm(ctx)} (the inputs explain "
                  f"{unexplained.came_loose:.0%} less of their variance) with the inputs unchanged: a serving path that "
                  "changed row by row (a fallback, a lookup on the wrong key, a recalibration, or a transform the log "
                  "does not hold)")
    else:
        reason = f"predictions shifted in scale at {hhmm(ctx)} with inputs and snapshot unchanged ({head[0].lower()}{head[1:]})"
    cands = (Candidate("calibration", "calibration", s, reason, detail=detail),) if s > 0 else ()
    return Evidence("calibration", verdict, s, summary, detail=detail, data={"plot": plot}, candidates=cands)


OFF_SHARE_FLOOR, OFF_SHARE_SCALE = 0.05, 0.1  # a share of rows the serving path no longer scores as the model does


def served_off_model(ctx: Context) -> tuple[float, ServingConsistency | None]:
    """Strength of "the served predictions no longer are what the serving snapshot computes from the logged inputs"
    (with the model; 0 and None without it), and the reading: the larger of two. The median row's gap grew (a
    calibration layer on every row: ``from_z`` of its growth over the baseline's gap), or a share of rows left the
    baseline's gap (a fallback or a transform on part of the traffic, which leaves the median row as it was: outside
    test 3, a constant for 30 % of the rows named no cause): ``from_z`` of the share's two-proportion z times
    ``from_excess`` of the share beyond ``OFF_SHARE_FLOOR``, scale ``OFF_SHARE_SCALE``."""
    if not ctx.has("model"):
        return 0.0, None
    from workbench.model.rescore import serving_consistency

    serving = ctx.cached("serving_consistency", lambda: serving_consistency(ctx.case, ctx.baseline, ctx.incident))
    if serving is None:
        return 0.0, None
    median = S.from_z(serving.changed / max(serving.gap_baseline, 1e-3))
    share = S.from_z(serving.off_z) * S.from_excess(serving.off_changed, OFF_SHARE_FLOOR, OFF_SHARE_SCALE)
    return max(median, share), serving


LOOSE_FLOOR, LOOSE_SCALE = 0.05, 0.1  # a share of the logit's variance the inputs no longer explain


def came_loose(u: UnexplainedShift | None) -> float:
    """Strength of "the served predictions came loose from their logged inputs" (model-free): ``from_z`` of the
    residual variance's growth (:attr:`~workbench.model.rescore.UnexplainedShift.came_loose_z`) times ``from_excess``
    of the share of the logit's variance it stands for, beyond ``LOOSE_FLOOR`` (scale ``LOOSE_SCALE``). A serving
    path that changed row by row (outside tests: a constant fallback for five hours 0.39, a lookup on the wrong key
    0.47) reads near 1; labels that came loose and inputs that broke leave the predictions following their inputs
    (0.00 on the outside tests' shuffled labels and remapped codes)."""
    if u is None:
        return 0.0
    return S.from_z(u.came_loose_z) * S.from_excess(u.came_loose, LOOSE_FLOOR, LOOSE_SCALE)


def _size(log_move: float) -> float:
    """How large a calibration move is, as evidence: ``from_excess`` of ``|log move|`` beyond 5%, scale 10%."""
    return S.from_excess(abs(log_move), math.log(1.05), 0.1)


def _ranking_worse(auc_drop: float, drop_z: float) -> float:
    """A ranking that got worse (AUC down by more than 0.005 at 3 SE): evidence against a calibration-only shift."""
    return S.from_excess(auc_drop, 0.005, 0.01) if drop_z >= 3 else 0.0


def unexplained_of(ctx: Context) -> UnexplainedShift | None:
    """The model-free unexplained prediction shift on the isolation's rows, when it can be measured."""
    from workbench.model.rescore import unexplained_shift

    if not ctx.case.features:
        return None
    u = ctx.cached("unexplained_shift", lambda: unexplained_shift(*window_rows(ctx), ctx.case.features, by=ctx.case.slices))
    return u if u is not None and u.usable else None


def _untouched(ctx: Context) -> RowsCalibration | None:
    """The calibration move on the windows' sampled rows that no broken feature's lost coverage reached: rows where
    every feature that lost coverage still holds a value (and not the default served in its place). None when no
    broken feature lost coverage, when a feature changed otherwise (a scale, stale or drift break touches every row,
    and spares none), or when too few spared rows hold labels."""
    from workbench.data.calibration import calibration_of_rows

    def compute() -> RowsCalibration | None:
        strengths = feature_strengths(ctx)
        changed = [row for row in drift(ctx).table.iter_rows(named=True) if strengths.get(row["feature"], 0.0) >= CHANGED]
        if any(row["kind"] not in ("coverage", "default") for row in changed):
            return None  # a scale, stale or drift break reaches every row: none is spared
        lost = [row for row in changed if strengths[row["feature"]] >= BROKEN
                and (row["kind"] == "default" or (coverage_delta(row) or 0.0) < 0)]
        if not lost:
            return None
        spared = pl.all_horizontal([_kept(row) for row in lost])
        before, after = (rows.filter(spared) for rows in window_rows(ctx))
        return calibration_of_rows(before, after, ctx.case.slices)

    return ctx.cached("calibration_spared", compute)


def _kept(row: dict) -> pl.Expr:
    """The rows where the feature of drift row ``row`` still holds a value (not null, not NaN, not its fill value)."""
    value = pl.col(row["feature"])
    held = value.is_not_null() & ~value.cast(pl.Float64).is_nan()
    return held & (value != row["fill_value"]) if row["kind"] == "default" and row["fill_value"] is not None else held
