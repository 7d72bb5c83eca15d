"""Plot specs (``workbench.rca.plotspec``) drawn with HoloViews.

A check puts a plain dict in ``Evidence.data["plot"]``; the HTML report draws it
as SVG and this module draws the same dict as an interactive HoloViews object, so
a user's own check gets a plot in the widget with no widget code. Unknown kinds
give a short note instead of failing.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh
import numpy as np

from workbench_widgets._style import AMBER, BLUE, GRAY, PLOT_OPTS, RED

__all__ = ["render_spec", "render_specs", "to_datetime64"]

# Options are validated against the current backend: make it Bokeh without displaying anything
# (hv.extension() would also emit notebook JS; that is done once, inline, by app.load_extensions).
hv.Store.set_current_backend("bokeh")

PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2")


def to_datetime64(values: Any) -> np.ndarray:
    """ISO strings or datetimes as naive-UTC ``datetime64[ms]`` (what Bokeh's datetime axis expects)."""
    out = []
    for v in values:
        if isinstance(v, str):
            v = datetime.fromisoformat(v.replace("Z", "+00:00"))
        if isinstance(v, datetime) and v.tzinfo is not None:
            v = v.astimezone(UTC).replace(tzinfo=None)
        out.append(np.datetime64(v, "ms"))
    return np.asarray(out, dtype="datetime64[ms]")


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else np.nan


def _timeseries(spec: dict) -> hv.Overlay:
    x = to_datetime64(spec.get("x", []))
    layers: list[hv.Element] = []
    for label, start, end, color, alpha in _spans(spec):
        layers.append(hv.VSpan(start, end, label=label).opts(color=color, alpha=alpha, line_alpha=0))
    ylabel = spec.get("y") or "value"
    for i, (name, vals) in enumerate(spec.get("series", {}).items()):
        ys = np.asarray([_num(v) for v in vals], dtype=float)
        layers.append(hv.Curve((x, ys), "time", hv.Dimension("value", label=ylabel), label=str(name))
                      .opts(color=PALETTE[i % len(PALETTE)], line_width=2))
    if spec.get("onset"):
        layers.append(hv.VLine(to_datetime64([spec["onset"]])[0], label="onset").opts(color=RED, line_dash="dashed", line_width=2))
    overlay = hv.Overlay(layers) if layers else hv.Overlay([hv.Curve([])])
    # axis labels set here: the first layer (a shaded span) would otherwise name the axes "x" and "y"
    return overlay.opts(title=spec.get("title", ""), responsive=True, min_width=360, height=250, legend_position="top_left",
                        show_grid=True, xlabel="", ylabel=ylabel if spec.get("y") else "", **PLOT_OPTS)


def _spans(spec: dict) -> list[tuple[str, np.datetime64, np.datetime64, str, float]]:
    out = []
    for start, end, label in spec.get("shade", []):
        a, b = to_datetime64([start, end])
        out.append((str(label), a, b, GRAY, 0.18))
    if spec.get("estimated_from") and spec.get("x"):
        a = to_datetime64([spec["estimated_from"]])[0]
        b = to_datetime64([spec["x"][-1]])[0]
        out.append(("labels delayed (estimated)", a, b, AMBER, 0.18))
    return out


def _bars(spec: dict) -> hv.Bars:
    labels = [str(v) for v in spec.get("labels", [])][:20]
    values = [_num(v) for v in spec.get("values", [])][:20]
    highlight = {str(h) for h in spec.get("highlight", [])}
    flag = ["highlighted" if lab in highlight else "other" for lab in labels]
    ylabel = spec.get("y") or "value"
    bars = hv.Bars((labels[::-1], values[::-1], flag[::-1]), "label", [hv.Dimension("value", label=ylabel), "flag"])
    return bars.opts(invert_axes=True, color="flag", cmap={"highlighted": RED, "other": BLUE}, responsive=True, min_width=360,
                     height=max(150, 50 + 22 * len(labels)), title=spec.get("title", ""), show_legend=False, xlabel="",
                     tools=["hover"], **PLOT_OPTS)


def _hist(spec: dict) -> hv.Overlay:
    edges = np.asarray([_num(e) for e in spec.get("edges", [])], dtype=float)
    layers = []
    for i, (name, counts) in enumerate(spec.get("series", {}).items()):
        c = np.asarray([_num(v) for v in counts], dtype=float)
        share = c / (np.nansum(c) or 1.0)
        layers.append(hv.Histogram((edges, share), kdims=["value"], vdims=[hv.Dimension("share", label="share of rows")], label=str(name))
                      .opts(fill_color=PALETTE[i % len(PALETTE)], fill_alpha=0.45, line_alpha=0.6,
                            line_color=PALETTE[i % len(PALETTE)]))
    overlay = hv.Overlay(layers) if layers else hv.Overlay([hv.Histogram(([0, 1], [0]))])
    return overlay.opts(title=spec.get("title", ""), responsive=True, min_width=360, height=240, legend_position="top_right",
                        **PLOT_OPTS)


def _table(spec: dict) -> hv.Table:
    columns = [str(c) for c in spec.get("columns", [])]
    rows = [[("–" if v is None else v) for v in row] for row in spec.get("rows", [])]
    data = {c: [r[i] if i < len(r) else None for r in rows] for i, c in enumerate(columns)}
    return hv.Table(data, kdims=columns[:1], vdims=columns[1:]).opts(
        title=spec.get("title", ""), width=560, height=min(40 + 26 * max(len(rows), 1), 320))  # tables are not responsive


_RENDERERS = {"timeseries": _timeseries, "bars": _bars, "hist": _hist, "table": _table}


def render_spec(spec: dict | None) -> hv.Element | hv.Overlay | None:
    """One plot spec as a HoloViews object (``None`` for no spec).

    >>> render_spec({"kind": "bars", "labels": ["a"], "values": [1.0], "title": "t"}).data["value"].tolist()
    [1.0]
    """
    if not spec:
        return None
    renderer = _RENDERERS.get(spec.get("kind", ""))
    if renderer is None:
        return hv.Div(f"<p>(no renderer for plot kind {spec.get('kind')!r}; known: {sorted(_RENDERERS)})</p>")
    return renderer(spec)


def render_specs(data: dict) -> list[hv.Element | hv.Overlay]:
    """Every plot an evidence's ``data`` carries: ``data["plot"]`` then ``data["plots"]``."""
    specs = [data.get("plot"), *data.get("plots", [])]
    return [obj for obj in map(render_spec, specs) if obj is not None]
