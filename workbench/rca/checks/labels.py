"""Did the labels move while predictions and features did not?"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from workbench.rca import _strength as S
from workbench.rca import plotspec
from workbench.rca.checks._common import (
    BROKEN,
    CHANGED,
    calibration_reading,
    confined_share,
    drift,
    feature_strengths,
    hhmm,
    label_change,
    label_evidence,
    move_size,
)
from workbench.rca.evidence import Candidate, Evidence

if TYPE_CHECKING:
    from workbench.rca.context import Context

__all__ = ["label_side"]

WARN = 0.2  # the strength from which the check warns; a loose-labels reading below it is not stated


def label_side(ctx: Context) -> Evidence:
    """Strength: how significant and how large the label change is (:func:`~workbench.rca.checks._common.label_evidence`),
    times the share predictions did *not* follow (effect sizes, with their sampling error only as a floor: see
    :class:`~workbench.data.labels.LabelShift`), weakened by broken features and a confined slice.

    A logging or join bug moves labels and leaves predictions and features alone; a routine
    refresh near the onset moves predictions a little, which at large n is many σ but a
    small share of the label change, so it does not hide a label incident. If the label
    change sits in one segment only, the slice check owns it instead.

    A population that moved moves the labels through the inputs, even where the served
    model follows it only part of the way (a boolean whose share went from 57% to 75%:
    labels +34%, predictions +13%). A label model fitted on baseline rows
    (:func:`workbench.model.rescore.labels_from_inputs`) predicts that part: the share
    of the label change that came with the inputs counts as followed too. And a logging
    bug leaves the predictions where they were: predictions that moved materially the
    labels' way (:func:`~workbench.rca.checks._common.move_size` of their relative change,
    the same map as the label change's size) speak against labels that changed on their
    own, whatever share of the label change they reached (a latent shift the model sees
    only in part: labels -62%, predictions -31%).

    Labels can also change without their rate: joined on the wrong key, or shuffled between rows, they keep their
    rate and lose their relation to the rows (:func:`_loose`).
    """
    ls, inputs = label_change(ctx)
    top_feature = max(feature_strengths(ctx).values(), default=0.0)
    confined = confined_share(ctx)
    came_with_inputs = inputs.share if inputs is not None else 0.0
    same_way = ls.prediction_log_change * ls.label_log_change > 0
    inputs_moved = move_size(ls.prediction_log_change) if same_way else 0.0
    rate_moved = label_evidence(ls)
    s = S.weaken(rate_moved * (1.0 - max(ls.followed, came_with_inputs)), top_feature, confined, inputs_moved)
    summary = (f"Label rate {ls.label_rate_baseline:.2%} → {ls.label_rate_incident:.2%} ({ls.label_z:+.1f}σ) while the "
               f"prediction mean went {ls.prediction_mean_baseline:.2%} → {ls.prediction_mean_incident:.2%} ({ls.prediction_z:+.1f}σ), "
               + _followed_words(ls, same_way) + (f"; {inputs}." if inputs is not None else "."))
    label = ctx.case.columns.label
    why = f"labels changed on their own at {hhmm(ctx)}: {summary[0].lower()}{summary[1:]}"
    loose, ranking = _loose(ctx, top_feature, confined, move_size(ls.prediction_log_change), rate_moved)
    if loose > max(s, WARN):  # the labels kept their rate but no longer belong to their rows (a weak reading says nothing)
        s, why = loose, f"labels came loose from their rows at {hhmm(ctx)}: {ranking}"
        summary = f"{summary[:-1]}; {ranking}."
    verdict = "fail" if s >= BROKEN else "warn" if s >= WARN else "pass"
    cands = (Candidate("label", label, s, why, detail=summary),) if s > 0 else ()
    return Evidence("label_side", verdict, s, summary, detail=str(ls), data={"plot": plotspec.bars(
        ["label rate", "prediction mean"], [ls.label_z, ls.prediction_z], title="Shift at the onset (σ)", y="σ")}, candidates=cands)


def _followed_words(ls, same_way: bool) -> str:
    """How the prediction mean moved beside the label rate, in words: a share of the label change it followed, or
    further than it (a serving path that logged 0: the predictions -100%, the labels -8%), or against it."""
    if not (same_way or ls.followed == 0):
        return "moving against the label change"
    if ls.followed >= 1 and abs(ls.prediction_log_change) > 2 * abs(ls.label_log_change):
        return "moving much further than the label change"
    return f"following {ls.followed:.0%} of the label change"


def _loose(ctx: Context, top_feature: float, confined: float, predictions_moved: float, rate_moved: float
           ) -> tuple[float, str]:
    """Strength and words for labels that came loose from their rows: the ranking collapsed (the AUC drop, significant
    through ``from_z`` of its z and large through ``from_excess`` beyond ``AUC_MATERIAL``, scale 0.03) while nothing
    that scores the rows changed. An input that came loose from its rows (drift kind ``decorrelated``, or a
    ``decorrelated`` isolation candidate of at least ``CHANGED``) rules it out:
    it loses the ranking the same way, and is the more specific finding (dev feature/decorrelated_shuffle/0 and /1
    named the labels first). Every other explanation of a worse ranking weakens it: a broken input, an input the
    isolation finds behind the change (dev feature/stale_block/23: a block of one value, drift strength 0.2, isolation
    0.94, named the labels second at 0.33), a snapshot
    (:func:`~workbench.rca.checks.snapshots.model_side`), a segment that holds the regression alone, predictions that
    moved (:func:`~workbench.rca.checks._common.move_size`), a label rate that moved (the label change above owns
    that). What is left is a label join on the wrong key, or an outcome that changed its relation to every input."""
    from workbench.data.calibration import AUC_MATERIAL
    from workbench.rca.checks.calibration import came_loose, served_off_model, unexplained_of

    cs = calibration_reading(ctx)
    drop = cs.auc_baseline - cs.auc_incident
    if not (drop > AUC_MATERIAL and cs.auc_drop_z >= 3):
        return 0.0, ""
    isolation = ctx.evidence_of("feature_isolation")
    if drift(ctx).table.filter(pl.col("kind") == "decorrelated").height or (isolation is not None and any(
            c.change == "decorrelated" and c.strength >= CHANGED for c in isolation.candidates)):
        return 0.0, ""  # an input that came loose from its rows explains a ranking lost with every marginal in place
    if not ctx.has("model") and came_loose(unexplained_of(ctx)) >= BROKEN:
        return 0.0, ""  # the predictions no longer follow their inputs: the serving path changed, not the labels
    if served_off_model(ctx)[0] >= BROKEN:
        return 0.0, ""  # the served predictions are no longer the model's: the serving path changed, not the labels
    snapshot = max((ev.score for ev in (ctx.evidence_of("model_side"), ctx.evidence_of("served_beside")) if ev is not None),
                   default=0.0)
    strength = S.weaken(S.from_z(cs.auc_drop_z) * S.from_excess(drop, AUC_MATERIAL, 0.03), top_feature, confined,
                        predictions_moved, rate_moved, snapshot,
                        isolation.score if isolation is not None else 0.0)
    words = (f"AUC {cs.auc_baseline:.3f} → {cs.auc_incident:.3f} ({cs.auc_drop_z:.1f} SE) with the inputs, the "
             "predictions and the snapshot unchanged: the labels no longer match their rows (a label join on the wrong "
             "key, or an outcome that changed)")
    return strength, words
