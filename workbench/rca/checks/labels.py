"""Did the labels move while predictions and features did not?"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.rca import _strength as S
from workbench.rca import plotspec
from workbench.rca.checks._common import BROKEN, confined_share, feature_strengths, hhmm, label_change, label_evidence, move_size
from workbench.rca.evidence import Candidate, Evidence

if TYPE_CHECKING:
    from workbench.rca.context import Context

__all__ = ["label_side"]


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
    """
    ls, inputs = label_change(ctx)
    top_feature = max(feature_strengths(ctx).values(), default=0.0)
    confined = confined_share(ctx)
    came_with_inputs = inputs.share if inputs is not None else 0.0
    same_way = ls.prediction_log_change * ls.label_log_change > 0
    inputs_moved = move_size(ls.prediction_log_change) if same_way else 0.0
    s = S.weaken(label_evidence(ls) * (1.0 - max(ls.followed, came_with_inputs)), top_feature, confined, inputs_moved)
    summary = (f"Label rate {ls.label_rate_baseline:.2%} → {ls.label_rate_incident:.2%} ({ls.label_z:+.1f}σ) while the "
               f"prediction mean went {ls.prediction_mean_baseline:.2%} → {ls.prediction_mean_incident:.2%} ({ls.prediction_z:+.1f}σ), "
               f"following {ls.followed:.0%} of the label change" + (f"; {inputs}." if inputs is not None else "."))
    verdict = "fail" if s >= BROKEN else "warn" if s >= 0.2 else "pass"
    label = ctx.case.columns.label
    cands = (Candidate("label", label, s, f"labels changed on their own at {hhmm(ctx)}: {summary[0].lower()}{summary[1:]}",
                       detail=summary),) if s > 0 else ()
    return Evidence("label_side", verdict, s, summary, detail=str(ls), data={"plot": plotspec.bars(
        ["label rate", "prediction mean"], [ls.label_z, ls.prediction_z], title="Shift at the onset (σ)", y="σ")}, candidates=cands)
