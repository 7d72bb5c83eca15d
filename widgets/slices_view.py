"""The slice explorer: where the change concentrates, per slice value and pair of values.

First, the slices ``workbench.data.slices.find_slices`` ranked by the regression they
explain (the SliceLine-style search; significant ones first). Below, the deltas of
``workbench.data.slices.slice_deltas`` for the chosen metric: bars over the values of one
slice column, or a heatmap over the value pairs of two. Clicking a found slice, a
bar or a heatmap cell selects that slice; the timeline and the feature view follow.
Both results are computed once per window pair (one pass each) and cached.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, Literal

import holoviews as hv
import numpy as np
import panel as pn
import param
import polars as pl

from workbench_widgets._base import View, guarded
from workbench_widgets._slicekey import format_slice, parse_slice
from workbench_widgets._style import BLUE, CSS, PLOT_OPTS, RED, TREE_BUTTON_CSS, kv

__all__ = ["SlicesView"]

METRIC_LABELS = {"normalized_entropy": "NE", "log_loss": "log loss", "calibration_ratio": "calibration ratio",
                 "label_rate": "label rate", "prediction_mean": "prediction mean"}
NONE = "(none)"


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else np.nan


def _shown(v: Any, spec: str) -> str:
    """A number as text, an en dash where it is undefined (a calibration ratio over a window without clicks)."""
    x = _num(v)
    return "–" if math.isnan(x) else format(x, spec)


def found_line(r: dict) -> str:
    """One found slice's figures beside its button (HTML)."""
    sig = "<b style='color:#991b1b'>significant</b>" if r["significant"] else "<span class='wb-muted'>not significant</span>"
    return (f"{sig} · {_shown(r['baseline_value'], '.3f')} → {_shown(r['incident_value'], '.3f')} "
            f"(rest {_shown(r['rest_delta'], '+.3f')}) · share {_shown(r['share'], '.0%')} · explains "
            f"{_shown(r['explained_share'], '.0%')} · z {_shown(r['z'], '.1f')}")


class SlicesView(View):
    """Found slices first, then per-slice deltas (bars for one column, heatmap for two); a click selects a slice."""

    metric: param.Selector[str] = param.Selector(default="normalized_entropy", objects=list(METRIC_LABELS),
                                                 doc="The metric whose change is drawn.")
    rows = param.String(default=None, allow_None=True, doc="The slice column drawn (bars), or the heatmap's rows.")
    cols = param.String(default=None, allow_None=True, doc="A second slice column: draw a heatmap of value pairs.")

    @classmethod
    def prefetch(cls, results, state) -> None:
        w = state.windows
        if w is not None and results.case.slices:
            results.slices(*w)
            results.slice_deltas(*w)

    def __init__(self, state, results, **params):
        super().__init__(state, results, **params)
        self.available = bool(results.case.slices)
        self.search: Any = None  # the SliceSearch of the current windows, once computed
        self.deltas: Any = None  # their SliceDeltas
        self.found_box = pn.Column(sizing_mode="stretch_width", margin=(0, 4))
        self.facts = pn.pane.HTML("", stylesheets=[CSS], sizing_mode="stretch_width")
        if not self.available:
            return
        columns = list(results.case.slices)
        if self.rows not in columns:
            self.rows = self._default_column(columns)
        self.rows_select = pn.widgets.Select(label="slice column", options=columns, value=self.rows, width=180)
        self.cols_select = pn.widgets.Select(label="by (heatmap)", options=[NONE, *columns], value=self.cols or NONE, width=180)
        self.metric_select = pn.widgets.Select(label="metric", options={v: k for k, v in METRIC_LABELS.items()},
                                               value=self.metric, width=170)
        self.rows_select.param.watch(lambda e: setattr(self, "rows", e.new), "value")
        self.cols_select.param.watch(lambda e: setattr(self, "cols", None if e.new == NONE else e.new), "value")
        self.metric_select.param.watch(lambda e: setattr(self, "metric", e.new), "value")
        self.clear = pn.widgets.Button(label="Show all traffic", width=150, visible=bool(state.slice), css_classes=["wb-clear-slice"])
        self.clear.on_click(lambda _e: setattr(self.state, "slice", None))
        self._version = 0  # bumped when new deltas arrive (new windows), so the plots redraw
        self._found_for: Any = None
        self._found_buttons: dict[str, pn.widgets.Button] = {}
        view_stream = hv.streams.Stream.define("SliceView", metric=self.metric, rows=self.rows, cols=self.cols,
                                               slice=state.slice, version=0)
        self._bars_stream, self._heat_stream = view_stream(), view_stream()
        self.bars_pane = pn.pane.HoloViews(None, sizing_mode="stretch_width", margin=(0, 8))
        self.heat_pane = pn.pane.HoloViews(None, sizing_mode="stretch_width", margin=(0, 8), visible=False)
        self._tap_bars: hv.streams.Tap | None = None
        self._tap_heat: hv.streams.Tap | None = None
        self._refresh_windows()
        state.param.watch(self._on_windows, ["baseline", "incident"])
        state.param.watch(self._on_slice, "slice")
        self.param.watch(self._on_controls, ["metric", "rows", "cols"])

    def _default_column(self, columns: list[str]) -> str:
        found = parse_slice(self.state.slice) if self.state.slice else {}
        return next(iter(found), columns[0])

    # ------------------------------------------------------------------ results for the current windows
    def _refresh_windows(self) -> None:
        w = self.state.windows
        if w is None:
            return
        key = ("find_slices", *w)
        if self.results.has(key) or self.results._from_diagnosis("find_slices", w) is not None:
            self._take(self.results.slices(*w), self.results.slice_deltas(*w))
        else:
            def done(r: Any) -> None:  # only if the windows did not change meanwhile
                if self.state.windows == w:
                    self._take(*r)

            self.run_long(f"searching slices for baseline {w[0]} vs incident {w[1]}…",
                          lambda: (self.results.slices(*w), self.results.slice_deltas(*w)), done)

    def _take(self, search: Any, deltas: Any) -> None:
        self.search, self.deltas = search, deltas
        self._version += 1
        self._render_found()
        self._render()

    @guarded("following the new windows")
    def _on_windows(self, *_events: param.parameterized.Event) -> None:
        self._refresh_windows()

    @guarded("following the selected slice")
    def _on_slice(self, *_events: param.parameterized.Event) -> None:
        self.clear.visible = bool(self.state.slice)
        columns = list(parse_slice(self.state.slice)) if self.state.slice else []
        assert self.rows is not None  # __init__ sets it whenever the view is available (else this is not watched)
        shown = [self.rows] + ([self.cols] if self.cols and self.cols != self.rows else [])
        if columns and sorted(columns) != sorted(shown):  # show the selected slice where it can be seen
            with param.parameterized.discard_events(self):
                self.param.update(rows=columns[0], cols=columns[1] if len(columns) > 1 else None)
        self._render_found()
        self._render()

    def _on_controls(self, *_events: param.parameterized.Event) -> None:
        self._render()

    # ------------------------------------------------------------------ drawing
    def _render_found(self) -> None:
        """The found slices as buttons, built once per search; selecting only restyles them."""
        s = self.search
        if s is None:
            return
        if self._found_for is not s:
            self._found_for = s
            self._found_buttons = {}
            items: list[Any] = []
            head = (f"<div class='wb-h'>Slices the search found</div><div class='wb-muted'>{s.tested} slices tested on "
                    f"{escape(METRIC_LABELS.get(s.metric, s.metric))}; total change {s.total_delta:+.4f}. "
                    f"{'The regression is <b>confined</b> to the top slice.' if s.confined else 'Not confined to one slice.'} "
                    f"Ranked by the regression each explains; click one to select it.</div>")
            items.append(pn.pane.HTML(head, stylesheets=[CSS], sizing_mode="stretch_width"))
            if s.table.is_empty():
                items.append(pn.pane.HTML("<div class='wb-muted'>No slice had enough labeled rows to test.</div>", stylesheets=[CSS]))
            for r in s.table.iter_rows(named=True):
                btn = pn.widgets.Button(label=r["slice"], button_type="light", width=300, height=30,
                                        stylesheets=[TREE_BUTTON_CSS], css_classes=["wb-found-slice"], margin=(1, 2))

                def click(_e: Any, label: str = r["slice"]) -> None:  # a def: mypy cannot type a lambda with a default
                    self._select_guarded(label)

                btn.on_click(click)
                self._found_buttons[r["slice"]] = btn
                text = found_line(r)
                items.append(pn.Row(btn, pn.pane.HTML(f"<span style='font-size:12px'>{text}</span>", stylesheets=[CSS], margin=(10, 4)),
                                    sizing_mode="stretch_width", margin=0))
            self.found_box.objects = items
        for label, btn in self._found_buttons.items():
            want: Literal["primary", "light"] = "primary" if label == self.state.slice else "light"
            if btn.button_type != want:
                btn.button_type = want

    @guarded("drawing the slices")
    def _render(self) -> None:
        self.timed(self._draw)

    def _draw(self) -> None:
        if self.deltas is None:
            return
        if self.rows_select.value != self.rows:
            self.rows_select.value = self.rows
        if self.cols_select.value != (self.cols or NONE):
            self.cols_select.value = self.cols or NONE
        heat = bool(self.cols and self.cols != self.rows)
        # Two panes with DynamicMaps, each with its own stream: a new slice, metric or column only
        # updates the visible one's data sources. Both are created at the first draw (the heatmap on the
        # first pair of slice columns, hidden), so switching to a heatmap later builds no new figure.
        values = {"metric": self.metric, "rows": self.rows, "cols": self.cols, "slice": self.state.slice, "version": self._version}
        if self.bars_pane.object is None:
            columns = list(self.results.case.slices)
            pair = (self.rows, self.cols) if heat else (columns[0], columns[1] if len(columns) > 1 else None)
            self._bars_stream.update(**values)
            self._heat_stream.update(**(values | {"rows": pair[0], "cols": pair[1]}))
            bars = hv.DynamicMap(self._bars, streams=[self._bars_stream])
            heatmap = hv.DynamicMap(self._heatmap, streams=[self._heat_stream])
            self._tap_bars = hv.streams.Tap(source=bars, x=None, y=None)
            self._tap_bars.add_subscriber(self._on_tap_bars)
            self._tap_heat = hv.streams.Tap(source=heatmap, x=None, y=None)
            self._tap_heat.add_subscriber(self._on_tap_heat)
            self.bars_pane.object, self.heat_pane.object = bars, heatmap
        stream = self._heat_stream if heat else self._bars_stream
        if {k: getattr(stream, k) for k in values} != values:
            stream.event(**values)
        self.heat_pane.visible, self.bars_pane.visible = heat, not heat
        self.facts.object = self._facts()

    def _frame(self, columns: str) -> pl.DataFrame:
        return self.deltas.table.filter(pl.col("columns") == columns)

    def _bars(self, metric: str, rows: str, cols: str | None, slice: str | None, version: int) -> hv.Bars:
        m = metric
        t = self._frame(rows).sort(f"{m}_delta", descending=True, nulls_last=True)
        values = [parse_slice(s_)[rows] for s_ in t["slice"]]
        found = set(self.search.table.filter(pl.col("significant"))["slice"]) if self.search is not None else set()
        flag = ["selected" if s_ == slice else ("found" if s_ in found else "other") for s_ in t["slice"]]
        data = {"value": values, "delta": [_num(v) for v in t[f"{m}_delta"]], "flag": flag,
                "baseline": [_num(v) for v in t[f"{m}_baseline"]], "incident": [_num(v) for v in t[f"{m}_incident"]],
                "share": [_num(v) for v in t["share_incident"]]}
        bars = hv.Bars(data, hv.Dimension("value", label=rows),
                       [hv.Dimension("delta", label=f"Δ {METRIC_LABELS[m]} (incident − baseline)"), "flag", "baseline",
                        "incident", "share"])
        return bars.opts(color="flag", cmap={"selected": RED, "found": "#f97316", "other": BLUE}, tools=["hover", "tap"],
                         height=300, responsive=True, min_width=400, show_legend=False, xrotation=30 if len(values) > 8 else 0,
                         title=f"Change in {METRIC_LABELS[m]} by {rows} (click a bar to select the slice)", framewise=True,
                         **{k: v for k, v in PLOT_OPTS.items() if k != "fontscale"})

    def _heatmap(self, metric: str, rows: str, cols: str | None, slice: str | None, version: int) -> hv.Overlay:
        m = metric
        if not cols or cols == rows:
            return hv.HeatMap([], ["x", "y"], "delta") * hv.Labels([], ["x", "y"], "text")
        pair = [c for c in self.results.case.slices if c in (rows, cols)]  # the order slice_deltas uses
        t = self._frame(" & ".join(pair))
        cells = []
        for label, delta, b, i, share in zip(t["slice"], t[f"{m}_delta"], t[f"{m}_baseline"], t[f"{m}_incident"],
                                             t["share_incident"], strict=True):
            parts = parse_slice(label)
            cells.append((parts[cols], parts[rows], _num(delta), _num(b), _num(i), _num(share)))
        heat = hv.HeatMap(cells, [hv.Dimension("x", label=cols), hv.Dimension("y", label=rows)],
                          [hv.Dimension("delta", label=f"Δ {METRIC_LABELS[m]}"), "baseline", "incident", "share"])
        finite = [abs(c[2]) for c in cells if np.isfinite(c[2])]
        lim = max(finite, default=1.0) or 1.0
        sel = parse_slice(slice) if slice else {}
        text = [(c[0], c[1], ("▶ " if sel.get(cols) == c[0] and sel.get(rows) == c[1] else "") +
                 (f"{c[2]:+.3f}" if np.isfinite(c[2]) else "–")) for c in cells]
        labels = hv.Labels(text, ["x", "y"], "text").opts(text_font_size="8pt", text_color="#111827")
        out = heat.opts(cmap="RdBu_r", clim=(-lim, lim), colorbar=True, tools=["hover", "tap"], xrotation=30,
                        clipping_colors={"NaN": "#f3f4f6"}, framewise=True)
        n = len({c[1] for c in cells})
        return (out * labels).opts(title=f"Change in {METRIC_LABELS[m]} by {rows} × {cols} (click a cell)",
                                   height=min(160 + 30 * n, 700), responsive=True, min_width=400,
                                   **{k: v for k, v in PLOT_OPTS.items() if k != "fontscale"})

    def _facts(self) -> str:
        label = self.state.slice
        if not label:
            return "<div class='wb-muted'>No slice selected: the views show all traffic.</div>"
        row = self.deltas.table.filter(pl.col("slice") == label)
        if row.is_empty():
            return f"<div class='wb-summary'>Selected <b>{escape(label)}</b> (not in these windows' slices).</div>"
        r = row.row(0, named=True)
        m = self.metric
        return (f"<div class='wb-summary'>Selected <b style='color:#7c3aed'>{escape(label)}</b>: "
                f"{METRIC_LABELS[m]} {_shown(r[m + '_baseline'], '.4f')} → {_shown(r[m + '_incident'], '.4f')} "
                f"(Δ {_shown(r[m + '_delta'], '+.4f')})</div>" +
                kv({"rows (baseline)": f"{r['rows_baseline']:,}", "rows (incident)": f"{r['rows_incident']:,}",
                    "share of incident traffic": _shown(r['share_incident'], '.1%')}))

    # ------------------------------------------------------------------ selecting
    @guarded("selecting the slice")
    def _on_tap_bars(self, x: Any = None, y: Any = None) -> None:
        if x is not None:
            assert self.rows is not None  # set whenever there are plots to tap
            self.select(format_slice({self.rows: str(x)}))

    @guarded("selecting the slice")
    def _on_tap_heat(self, x: Any = None, y: Any = None) -> None:
        if x is None or y is None or not self.cols:
            return
        values = {self.rows: str(y), self.cols: str(x)}
        pair = [c for c in self.results.case.slices if c in values]
        self.select(format_slice({c: values[c] for c in pair}))

    @guarded("selecting the slice")
    def _select_guarded(self, label: str | None) -> None:
        self.select(label)

    def select(self, label: str | None) -> None:
        """Select a slice by its label (``None`` shows all traffic again)."""
        if label is not None:
            unknown = [c for c in parse_slice(label) if c not in self.results.case.slices]
            if unknown:
                raise ValueError(f"slice {label!r}: {unknown[0]!r} is not a slice column.\n"
                                 f"Available: {list(self.results.case.slices)}")
        self.state.slice = label

    # ------------------------------------------------------------------ layout
    def _build(self) -> pn.viewable.Viewable:
        if not self.available:
            return pn.Column(self.error, pn.pane.HTML("<div class='wb-muted'>This case has no slice columns: map them in "
                                                      "workbench.toml ([columns] slices = [\"country\", ...]).</div>",
                                                      stylesheets=[CSS]))
        controls = pn.Row(self.rows_select, self.cols_select, self.metric_select, pn.Column(pn.Spacer(height=18), self.clear))
        return pn.Column(self.error, self.status, self.found_box, controls, self.facts, self.bars_pane, self.heat_pane,
                         sizing_mode="stretch_width")

    def code(self) -> str:
        lines = ["from workbench import Window, find_slices, open_case, slice_deltas", "",
                 f"case = open_case({str(self.results.case.root)!r})"]
        if self.state.windows:
            b, i = self.state.windows
            lines += [f"baseline = Window({b.start.isoformat()!r}, {b.end.isoformat()!r})",
                      f"incident = Window({i.start.isoformat()!r}, {i.end.isoformat()!r})",
                      "print(find_slices(case, baseline, incident))", "deltas = slice_deltas(case, baseline, incident).table"]
            if self.state.slice:
                lines.append(f"deltas.filter(deltas['slice'] == {self.state.slice!r})")
        return "\n".join(lines)
