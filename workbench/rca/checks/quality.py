"""Did prediction quality regress beyond its normal variation, from when, until when? (the root of the tree)"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING

from workbench._render import moved
from workbench.case.grain import grain_words
from workbench.rca import _strength as S
from workbench.rca import plotspec
from workbench.rca.checks._common import windows_shade
from workbench.rca.evidence import Evidence
from workbench.windows import iso

if TYPE_CHECKING:
    from workbench.data.onset import MetricVerdict, Onset, PendingLabels
    from workbench.rca.context import Context

__all__ = ["NAMES", "describe_metric", "prediction_quality"]

NAMES = {"normalized_entropy": "Normalized entropy", "calibration_ratio": "The calibration ratio (Σ prediction / Σ label)",
         "auc": "AUC", "log_loss": "Log loss", "prediction_mean": "The prediction mean", "label_rate": "The label rate"}
SHORT = {"normalized_entropy": "NE", "calibration_ratio": "calibration ratio", "auc": "AUC"}


def describe_metric(v: MetricVerdict) -> str:
    """``name went from a to b (+x%)`` for one watched metric."""
    change = (v.current / v.baseline - 1) if v.baseline and math.isfinite(v.baseline) and math.isfinite(v.current) else math.nan
    pct = f" ({change:+.1%})" if math.isfinite(change) else ""
    return f"{NAMES.get(v.metric, v.metric)} {moved(v.baseline, v.current)} from {v.baseline:.3f} to {v.current:.3f}{pct}"


def _lower(text: str) -> str:
    return text if text.startswith("AUC") else text[:1].lower() + text[1:]


def _plots(ctx: Context, on: Onset) -> tuple[dict, list[dict]]:
    series = on.series
    x = [iso(t) for t in series["window"].to_list()] if series.height else []
    per = grain_words(on.grain or "1h")
    estimated_from = iso(ctx.case.end - timedelta(hours=on.label_delay_hours)) if on.label_delay_hours else None
    onset = iso(on.onset) if on.detected and on.onset else None
    head = on.metric if on.metric in series.columns else "normalized_entropy"
    plot = plotspec.timeseries(x, {NAMES.get(head, head).lower(): series[head].to_list() if head in series.columns else []},
                               title=f"{NAMES.get(head, head)} per {per}" + (f" in {ctx.segment}" if ctx.segment else ""),
                               y=head.replace("_", " "), onset=onset, shade=windows_shade(ctx), estimated_from=estimated_from)
    others = [plotspec.timeseries(x, {m.replace("_", " "): series[m].to_list() for m in cols}, title=title, onset=onset,
                                  shade=plot["shade"], estimated_from=estimated_from)
              for cols, title in ((["normalized_entropy"], f"Normalized entropy per {per}"),
                                  (["calibration_ratio"], "Calibration ratio (Σ prediction / Σ label)"),
                                  (["auc"], f"AUC per {per}"),
                                  (["prediction_mean", "label_rate"], "Prediction mean and label rate"))
              if cols[0] != head and all(c in series.columns for c in cols)]
    return plot, others


def pending_tail(ctx: Context) -> PendingLabels | None:
    """The trailing periods still waiting for labels, left out of detection (:func:`workbench.data.onset.pending_labels`),
    once per investigation; None when the windows were given (the user chose what to test)."""
    from workbench.data.onset import pending_labels

    return None if ctx.onset.forced else ctx.cached("pending_labels", lambda: pending_labels(ctx.onset))


def pending_command(ctx: Context, pending: PendingLabels) -> str:
    """The command that tests the untested periods with the labels they have."""
    return (f"workbench diagnose {ctx.case.root} --incident "
            f"{pending.window.start:%Y-%m-%dT%H:%M}/{pending.window.end:%Y-%m-%dT%H:%M}")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _earlier(on: Onset) -> str:
    """A regression that ended before the one reported began, in words (:func:`workbench.data.onset._latest`)."""
    before = on.earlier
    head = before.verdict(before.metric) if before is not None else None
    if before is None or head is None or before.onset is None or before.end is None:
        return ""
    return (f" An earlier regression ended before this one began: {_lower(describe_metric(head))} from "
            f"{before.onset:%Y-%m-%d %H:%M} until {before.end:%Y-%m-%d %H:%M} UTC; it is not the one diagnosed.")


def prediction_quality(ctx: Context) -> Evidence:
    """Strength: the headline metric's robust severity (σ beyond its cycle-aware normal range) through ``from_z``.

    The headline metric is the one that regressed most (:mod:`workbench.data.onset`);
    every watched metric is listed. A case too sparse to test at any grain is said
    to be so, never reported as "no regression"; nor are the latest periods still waiting for labels, which detection
    leaves out: the summary says which hours those are, and, when the served predictions moved there beyond their
    day-to-day range, how to test them with the labels they have. Served rows without a finite prediction, which the
    loader leaves out of every figure (:class:`workbench.case.loader.Unscored`), are said too.
    """
    on = ctx.onset
    lost = f" {_sentence(str(ctx.case.unscored))}." if ctx.case.unscored is not None else ""
    if not on.testable:
        return Evidence("prediction_quality", "skip", 0.0, f"Prediction quality cannot be tested: {on.reason}.{lost}",
                        reason=f"{on.reason}", data={"onset": on.to_dict()})
    plot, others = _plots(ctx, on)
    where = f" in {ctx.segment} (the whole traffic stayed within its noise)" if ctx.segment else ""
    timed = f"; onset and end read on {ctx.located_in}, which holds it alone" if ctx.located_in else ""
    per = grain_words(on.grain or "1h")
    head = on.verdict(on.metric)
    data = {"plot": plot, "plots": others, "onset": on.to_dict()}
    pending = pending_tail(ctx)
    untested = f" {_sentence(str(pending))}." if pending is not None else ""
    if pending is not None and pending.moved:
        untested += f" To test them with the labels they have: {pending_command(ctx, pending)}."
    untested += lost  # rows without a prediction: left out of every figure above, and a fault of their own
    if on.detected and head is not None:
        until = f" until {on.end:%Y-%m-%d %H:%M} UTC (it recovered)" if on.end else ""
        given = " in the given windows" if on.forced else f", {on.severity:.1f}σ beyond its normal variation"
        also = [_lower(describe_metric(v)) for v in on.metrics if v.regressed and v.metric != on.metric]
        summary = (f"{describe_metric(head)}{where} from {on.onset:%Y-%m-%d %H:%M} UTC{until}{given} (per {per}{timed})"
                   + (f"; also {'; '.join(also)}" if also else "") + "." + _earlier(on)
                   + (f" {_sentence(mixed)}." if (mixed := on.mixed()) else "") + untested)
        return Evidence("prediction_quality", "fail", S.from_z(on.severity) if not on.forced else 1.0, summary,
                        detail=on.method, data=data)
    steady = "; ".join(f"{SHORT.get(v.metric, v.metric)} {v.baseline:.3f} → {v.current:.3f}" for v in on.metrics if v.tested)
    closest, mixed = on.closest(), on.mixed()
    near = (f" The {closest}." if closest else "") + (f" {_sentence(mixed)}." if mixed else "")
    summary = f"Prediction quality stayed within its normal variation per {per} ({steady}).{near}" + untested
    return Evidence("prediction_quality", "pass", 0.0, summary, detail=on.method, data=data)
