"""Did prediction quality regress beyond its normal variation, and when? (the root of the tree)"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from workbench.rca import _strength as S
from workbench.rca import plotspec
from workbench.rca.checks._common import windows_shade
from workbench.rca.evidence import Evidence
from workbench.windows import iso

if TYPE_CHECKING:
    from workbench.rca.context import Context

__all__ = ["prediction_quality"]


def prediction_quality(ctx: Context) -> Evidence:
    """Strength: the onset's robust severity (σ above the hour-of-day baseline) through ``from_z``."""
    on = ctx.onset
    series = on.series
    plot = plotspec.timeseries(
        [iso(t) for t in series["window"].to_list()], {"normalized entropy": series["normalized_entropy"].to_list()},
        title="Normalized entropy per hour", y="NE", onset=iso(on.onset) if on.detected and on.onset else None,
        shade=windows_shade(ctx),
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
