"""The quality timeline: NE, calibration ratio, prediction mean and label rate per hour.

It draws ``workbench.data.quality.quality_series`` (one pass, cached) and the onset
from ``workbench.data.onset.detect_onset``: the onset as a dashed red line, the hours
whose labels have not all arrived yet (``label_delay_hours``) shaded amber and
their label metrics dashed, as *estimated*; the model's expected NE (the fitted
daily cycle) dotted. The baseline and incident windows are shaded blue and red.

Dragging across any plot (x box-select) sets the incident window, or the baseline
window when "drag sets: baseline" is chosen; every other view follows. With a
slice selected, its own series is drawn over the overall one (from the per-column
series prefetched at load, so selecting a slice does not rescan the data).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import param
import polars as pl
from bokeh.events import SelectionGeometry
from bokeh.layouts import column as bk_column
from bokeh.models import BoxSelectTool, ColumnDataSource
from bokeh.models.annotations import BoxAnnotation  # bokeh.models re-exports it, but not visibly to a type checker

from workbench_widgets._base import View, guarded
from workbench_widgets._plots import to_datetime64
from workbench_widgets._slicekey import parse_slice
from workbench_widgets._style import AMBER, BASELINE_COLOR, BLUE, CSS, INCIDENT_COLOR, PLOT_OPTS, RED

__all__ = ["METRICS", "QualityTimeline"]

# metric column -> (axis label, needs labels)
METRICS = {
    "normalized_entropy": ("NE", True),
    "calibration_ratio": ("calibration ratio", True),
    "prediction_mean": ("prediction mean", False),
    "label_rate": ("label rate", True),
}
SLICE_COLOR = "#7c3aed"
MAX_PAIRS = 6  # pairs of slice columns prefetched (4 columns); beyond, a pair's series is computed when selected


def _naive(t: datetime) -> np.datetime64:
    return to_datetime64([t])[0]


def _to_utc(value: Any) -> datetime:
    """A bound from Bokeh (ms since epoch, numpy or pandas time) as an aware UTC datetime."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value / 1000.0, tz=UTC)
    if isinstance(value, np.datetime64):
        return datetime.fromtimestamp(value.astype("datetime64[us]").astype(np.int64) / 1e6, tz=UTC)
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ms(t: datetime) -> float:
    """Milliseconds since the epoch: how Bokeh's datetime axis places a UTC time."""
    return _to_utc(t).timestamp() * 1000.0


class _Changed:
    """A stand-in for a param event (a background pass finished: redraw that part)."""

    def __init__(self, name: str):
        self.name = name


class QualityTimeline(View):
    """Quality over time with the onset, the estimated (label-delayed) hours and the selected windows."""

    metrics = param.ListSelector(default=list(METRICS), objects=list(METRICS), doc="The metrics drawn, top to bottom.")
    drag_sets: param.Selector[str] = param.Selector(default="incident", objects=["incident", "baseline"],
                                                    doc="Which window a drag across the plots sets.")
    every: param.Selector[str] = param.Selector(default="1h", objects=["1h"], doc="The series' time step (the onset is hourly).")
    plot_height = param.Integer(default=165, bounds=(80, 600), doc="Height of each metric's plot in pixels.")

    @classmethod
    def prefetch(cls, results, state) -> None:
        """The passes this view draws: the hourly series overall, per slice column and per pair of columns
        (the slice search reports pairs too), and the onset. Selecting a slice then needs no scan."""
        results.quality()
        results.onset()
        columns = list(results.case.slices)
        for column in columns:
            results.quality(by=column)
        for pair in list(itertools.combinations(columns, 2))[:MAX_PAIRS]:
            results.quality(by=pair)

    def __init__(self, state, results, **params):
        super().__init__(state, results, **params)
        self.series = results.quality().table.sort("window")
        try:
            self.onset = results.onset()
        except Exception as exc:  # the plots still make sense without the onset
            self.onset = None
            self.show_error(exc, "detecting the onset")
        self.x = to_datetime64(self.series["window"].to_list())
        delay = getattr(self.onset, "label_delay_hours", 0) or 0
        self.delayed_from = self.x[-delay] if 0 < delay <= len(self.x) else None
        self.estimated = self.x >= self.delayed_from if self.delayed_from is not None else np.zeros(len(self.x), bool)
        self._slice_cache: dict[str, dict[str, np.ndarray] | None] = {}
        # HoloViews draws what never changes; the parts a click changes (the selected slice's curve, the
        # window shading) are plain Bokeh models updated in place, so a selection costs milliseconds.
        self.overlays = {m: self._overlay(m) for m in self.metrics}
        self.figures = {m: hv.render(self.overlays[m], backend="bokeh") for m in self.metrics}
        self.slice_sources: dict[str, ColumnDataSource] = {}
        self.spans: dict[str, tuple[BoxAnnotation, BoxAnnotation]] = {}
        for i, m in enumerate(self.metrics):
            self._decorate(m, self.figures[m], shared=self.figures[self.metrics[0]] if i else None)
        self.figure_pane = pn.pane.Bokeh(bk_column(list(self.figures.values()), sizing_mode="stretch_width"),
                                         sizing_mode="stretch_width", margin=(0, 8))
        self._draw_windows()
        self._draw_slice()
        self.drag = pn.widgets.RadioButtonGroup(options=["incident", "baseline"], value=self.drag_sets, button_type="default",
                                                button_style="outline", width=200, css_classes=["wb-drag"])
        self.drag.link(self, value="drag_sets", bidirectional=True)
        self.reset = pn.widgets.Button(label="Reset to the detected windows", width=230, css_classes=["wb-reset"])
        self.reset.on_click(lambda _e: self.reset_windows())
        self.clear_slice = pn.widgets.Button(label="Show all traffic", width=150, visible=bool(state.slice))
        self.clear_slice.on_click(lambda _e: setattr(self.state, "slice", None))
        self.caption = pn.pane.HTML(self._caption(), stylesheets=[CSS], sizing_mode="stretch_width")
        state.param.watch(self._on_state, ["baseline", "incident", "slice"])
        self._seen_slice_columns: set = set()

    # ------------------------------------------------------------------ data
    def _values(self, table: pl.DataFrame, metric: str) -> np.ndarray:
        return table[metric].cast(pl.Float64).fill_null(np.nan).to_numpy()

    def slice_series(self, label: str | None) -> dict[str, np.ndarray] | None:
        """The selected slice's series per metric, aligned to the overall hours (cached results only)."""
        if not label:
            return None
        if label in self._slice_cache:
            return self._slice_cache[label]
        cond = parse_slice(label)
        by = tuple(cond)
        key = ("quality", by[0] if len(by) == 1 else by, self.every)
        if not self.results.has(key):
            self.run_long(f"computing quality for {label}…", lambda: self.results.quality(by=key[1], every=self.every),
                          lambda _r: self._on_state(_Changed("slice")))
            return None
        table = self.results.quality(by=key[1], every=self.every).table
        sub = table.filter(pl.all_horizontal(pl.col(c).cast(pl.String) == v for c, v in cond.items()))
        aligned = self.series.select("window").join(sub, on="window", how="left")
        self._slice_cache[label] = {m: self._values(aligned, m) for m in METRICS}
        return self._slice_cache[label]

    # ------------------------------------------------------------------ plots
    def _static(self, metric: str) -> list[hv.Element]:
        label, needs_labels = METRICS[metric]
        y = self._values(self.series, metric)
        dim = hv.Dimension(metric, label=label)
        layers: list[hv.Element] = []
        if self.delayed_from is not None:
            layers.append(hv.VSpan(self.delayed_from, self.x[-1] + np.timedelta64(1, "h"), label="labels still arriving")
                          .opts(color=AMBER, alpha=0.16, line_alpha=0))
        reliable = np.where(self.estimated & needs_labels, np.nan, y)
        layers.append(hv.Curve((self.x, reliable), "time", dim, label="all traffic")
                      .opts(color=BLUE, line_width=2, tools=["hover", "xbox_select"]))
        if needs_labels and self.estimated.any():
            est = np.where(self.estimated | np.roll(self.estimated, -1), y, np.nan)
            layers.append(hv.Curve((self.x, est), "time", dim, label="estimated (labels delayed)")
                          .opts(color=BLUE, line_width=2, line_dash="dashed", alpha=0.6))
        expected = self._expected(metric)
        if expected is not None:
            layers.append(hv.Curve((self.x, expected), "time", dim, label="expected").opts(color="#6b7280", line_dash="dotted"))
        return layers

    def _expected(self, metric: str) -> np.ndarray | None:
        """The onset's expectation of ``metric`` per period (natural units: the detector fits ratios on the log scale
        and reports them back), when the onset was read on the traffic drawn here: a segment's expectation over the
        whole traffic's curve would be another series' line."""
        o = self.onset
        if o is None or getattr(o, "metric", None) != metric or "expected" not in getattr(o, "series", pl.DataFrame()).columns:
            return None
        if self.results.segment is not None:
            return None
        s = o.series.select("window", "expected")
        return self.series.select("window").join(s, on="window", how="left")["expected"].cast(pl.Float64).fill_null(np.nan).to_numpy()

    def _overlay(self, metric: str) -> hv.Overlay:
        """The static drawing of one metric: curves (estimated hours dashed), expected NE, onset."""
        label, _ = METRICS[metric]
        onset_t = self.onset.onset if self.onset is not None and self.onset.detected and self.onset.onset else None
        onset = ([hv.VLine(_naive(onset_t), label="onset").opts(color=RED, line_dash="dashed", line_width=2)]
                 if onset_t is not None else [])
        return hv.Overlay([*self._static(metric), *onset]).opts(
            height=self.plot_height, responsive=True, min_width=500, show_grid=True, show_legend=False, ylabel=label,
            xlabel="", title="", **{k: v for k, v in PLOT_OPTS.items() if k != "fontscale"})

    def _decorate(self, metric: str, fig: Any, shared: Any | None) -> None:
        """Add the in-place-updated parts to a rendered figure: window shading, the slice curve, x-range selection."""
        if shared is not None:
            fig.x_range = shared.x_range  # one time axis: zooming one plot zooms all
        # bokeh takes None for an edge (the frame's edge: .accepts(Null, ...)); its stubs leave that out
        base = BoxAnnotation(fill_color=BASELINE_COLOR, fill_alpha=0.13, line_alpha=0, left=None, right=None,  # type: ignore[arg-type]
                             level="underlay")
        inc = BoxAnnotation(fill_color=INCIDENT_COLOR, fill_alpha=0.13, line_alpha=0, left=None, right=None,  # type: ignore[arg-type]
                            level="underlay")
        fig.add_layout(base)
        fig.add_layout(inc)
        self.spans[metric] = (base, inc)
        src = ColumnDataSource({"x": self.x, "y": np.full(len(self.x), np.nan)})
        fig.line("x", "y", source=src, color=SLICE_COLOR, line_width=1.8, alpha=0.85)
        self.slice_sources[metric] = src
        select = BoxSelectTool(dimensions="width", description="Drag to set a window")
        fig.add_tools(select)
        fig.toolbar.active_drag = select
        fig.on_event(SelectionGeometry, self._on_geometry)

    # ------------------------------------------------------------------ interaction
    @guarded("setting the window from your selection")
    def _on_geometry(self, event: SelectionGeometry) -> None:
        geometry = getattr(event, "geometry", {}) or {}
        if not getattr(event, "final", True) or geometry.get("x0") is None or geometry.get("x1") is None:
            return
        x0, x1 = sorted((geometry["x0"], geometry["x1"]))
        self.select(_to_utc(x0), _to_utc(x1), self.drag_sets)

    def select(self, start: datetime, end: datetime, which: str = "incident") -> None:
        """Set a window from a selected range, snapped to whole hours inside the case."""
        hour = timedelta(hours=1)
        case = self.results.case
        start = max(start.replace(minute=0, second=0, microsecond=0), case.start)
        end_floor = end.replace(minute=0, second=0, microsecond=0)
        end = min(end_floor + hour if end_floor < end else end_floor, case.end)
        if end <= start:
            end = min(start + hour, case.end)
        if which not in ("incident", "baseline"):
            raise ValueError(f"which={which!r}: choose 'incident' or 'baseline'.")
        setattr(self.state, which, (start, end))

    @guarded("resetting the windows")
    def reset_windows(self) -> None:
        d = self.results.diagnosis()
        self.state.param.update(baseline=(d.baseline.start, d.baseline.end), incident=(d.incident.start, d.incident.end))

    @guarded("following the state")
    def _on_state(self, *events: param.parameterized.Event | _Changed) -> None:
        names = {e.name for e in events}
        if names & {"baseline", "incident"}:
            self._draw_windows()
        if "slice" in names:
            self._draw_slice()
        self.clear_slice.visible = bool(self.state.slice)
        self.caption.object = self._caption()
        pn.io.push_notebook(self.figure_pane)  # Bokeh models changed directly: tell a notebook front end

    @guarded("drawing the windows")
    def _draw_windows(self) -> None:
        for window, k in ((self.state.baseline, 0), (self.state.incident, 1)):
            left, right = (None, None) if window is None else (_ms(window[0]), _ms(window[1]))
            for spans in self.spans.values():
                box = spans[k]
                if box.left != left or box.right != right:
                    box.update(left=left, right=right)

    @guarded("drawing the slice")
    def _draw_slice(self) -> None:
        series = self.slice_series(self.state.slice)
        for m, src in self.slice_sources.items():
            ys = series[m] if series is not None else np.full(len(self.x), np.nan)
            src.data = {"x": self.x, "y": ys}
            self._fit_y(m, ys)

    def _fit_y(self, metric: str, extra: np.ndarray) -> None:
        """Let the y axis show the slice's series too (a small slice is noisier than all traffic)."""
        base = self._values(self.series, metric)
        values = np.concatenate([base, extra])
        values = values[np.isfinite(values)]
        if not values.size:
            return
        lo, hi = float(values.min()), float(values.max())
        pad = (hi - lo) * 0.06 or abs(hi) * 0.05 or 0.05
        y_range = self.figures[metric].y_range
        if hasattr(y_range, "start"):
            y_range.update(start=lo - pad, end=hi + pad)

    def _caption(self) -> str:
        s = self.state

        def fmt(w: Any) -> str:
            return "–" if w is None else f"{w[0]:%m-%d %H:%M} → {w[1]:%m-%d %H:%M}"

        o = self.onset
        onset = (f"onset <b>{o.onset:%Y-%m-%d %H:%M}</b> UTC ({escape(o.metric)} {o.baseline_value:.3f} → {o.current_value:.3f})"
                 if o is not None and o.detected and o.onset else
                 f"<b>not tested</b>: {escape(o.reason)}" if o is not None and not o.testable else "no onset detected")
        delay = getattr(o, "label_delay_hours", 0) or 0
        delayed = (f" · last <b>{delay} h</b> still waiting for labels: label metrics there are <i>estimated</i> (dashed)"
                   if delay else "")
        sl = f" · slice <b style='color:{SLICE_COLOR}'>{escape(s.slice)}</b>" if s.slice else ""

        def key(color: str, dash: str, text: str) -> str:
            return (f"<span style='display:inline-block;width:22px;border-top:2px {dash} {color};vertical-align:middle;"
                    f"margin:0 4px 0 10px'></span>{text}")

        legend = (key(BLUE, "solid", "all traffic") + key(BLUE, "dashed", "estimated (labels delayed)") +
                  key("#6b7280", "dotted", "expected (daily cycle)") + key(RED, "dashed", "onset") +
                  key(SLICE_COLOR, "solid", escape(s.slice) if s.slice else "selected slice"))
        return (f"<div class='wb-summary'>{onset}{delayed}{sl}</div><div class='wb-kv'>{legend}</div>"
                f"<div class='wb-kv'><span style='color:{BASELINE_COLOR}'>&#9632;</span> baseline <b>{fmt(s.baseline)}</b> &nbsp; "
                f"<span style='color:{INCIDENT_COLOR}'>&#9632;</span> incident <b>{fmt(s.incident)}</b> UTC &nbsp;·&nbsp; "
                f"drag across a plot to set a window</div>")

    def _build(self) -> pn.viewable.Viewable:
        controls = pn.Row(pn.pane.HTML("<span class='wb-muted'>drag sets</span>", stylesheets=[CSS], margin=(12, 4, 0, 8)),
                          self.drag, self.reset, self.clear_slice)
        return pn.Column(self.error, self.status, self.caption, controls, self.figure_pane, sizing_mode="stretch_width")

    def code(self) -> str:
        lines = ["from workbench import detect_onset, open_case, quality_series", "",
                 f"case = open_case({str(self.results.case.root)!r})", "series = quality_series(case)",
                 "onset = detect_onset(series)", "print(onset)"]
        if self.state.slice:
            by = list(parse_slice(self.state.slice))
            spelled = repr(by[0]) if len(by) == 1 else repr(tuple(by))
            lines.append(f"by_slice = quality_series(case, by={spelled})")
        if self.state.windows:
            b, i = self.state.windows
            lines += ["from workbench import Window", f"baseline = Window({b.start.isoformat()!r}, {b.end.isoformat()!r})",
                      f"incident = Window({i.start.isoformat()!r}, {i.end.isoformat()!r})"]
        return "\n".join(lines)

