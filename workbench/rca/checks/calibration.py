"""Did predictions move in scale while inputs and snapshot did not?"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.rca import _strength as S
from workbench.rca import plotspec
from workbench.rca.checks._common import BROKEN, feature_strengths, hhmm
from workbench.rca.evidence import Candidate, Evidence

if TYPE_CHECKING:
    from workbench.rca.context import Context

__all__ = ["calibration"]


def calibration(ctx: Context) -> Evidence:
    """Strength: the prediction-mean shift z with ranking held (AUC), weakened by every other explanation.

    A calibration shift moves predictions in scale while features, labels and the
    snapshot stay put; with a model, logged predictions also stop matching what the
    serving snapshot computes from the logged features (serving consistency).
    """
    from workbench.data.calibration import calibration_shift

    cs = ctx.cached("calibration_shift", lambda: calibration_shift(ctx.case, ctx.baseline, ctx.incident))
    # the other explanations, read from the evidence those checks returned (run now if they have not run yet)
    others = [max(feature_strengths(ctx).values(), default=0.0)]
    others += [ev.score for ev in (ctx.evidence_of("model_side"), ctx.evidence_of("label_side")) if ev is not None]
    s = S.weaken(S.from_z(abs(cs.calibration_z)), S.from_z(max(cs.auc_drop_z, 0.0)), *others)
    serving = None
    if ctx.has("model"):
        from workbench.model.rescore import serving_consistency

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
    cands = (Candidate("calibration", "calibration", s, f"predictions shifted in scale at {hhmm(ctx)} with inputs and "
                       f"snapshot unchanged ({summary[0].lower()}{summary[1:-1]})", detail=detail),) if s > 0 else ()
    return Evidence("calibration", verdict, s, summary, detail=detail, data={"plot": plot}, candidates=cands)
