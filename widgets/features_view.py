"""The feature view: features ranked by how broken they are, one feature before/after, coverage over time.

It draws ``workbench.data.drift.feature_drift`` (every feature, baseline vs incident:
kind, severity, coverage, PSI, scale ratio, staleness), ``training_skew`` (serving
vs training, when the case has a training sample), the attribution from
``workbench.model.isolation.isolate_features`` when available, ``feature_timeline``
(coverage and mean per hour) and, with a slice selected, ``feature_by_slice``
(did the feature break inside that slice, or everywhere?). Clicking a row opens
the feature. Windowed results are computed once per window pair and cached.

Before/after distributions are drawn from the drift table's own quantiles
(p01, p50, p99, mean ± std, coverage) — the numbers the ranking used.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, cast

import holoviews as hv
import numpy as np
import panel as pn
import param
import polars as pl
from bokeh.layouts import column as bk_column
from bokeh.models import ColumnDataSource
from bokeh.models.annotations import BoxAnnotation  # bokeh.models re-exports it, but not visibly to a type checker

from workbench_widgets._base import View, guarded
from workbench_widgets._plots import to_datetime64
from workbench_widgets._style import BASELINE_COLOR, CSS, INCIDENT_COLOR, PLOT_OPTS, RED, kv

__all__ = ["FeaturesView"]

KIND_COLORS = {"coverage": "#dc2626", "default": "#dc2626", "scale": "#d97706", "stale": "#7c3aed", "distribution": "#2563eb",
               "none": "#9ca3af"}
TABLE_COLUMNS = {"rank": "#", "feature": "feature", "kind": "kind", "severity": "severity", "coverage_baseline": "coverage before",
                 "coverage_incident": "coverage after", "psi": "PSI", "scale_ratio": "scale ratio",
                 "top_share_incident": "top value share", "skew": "skew vs training", "explained": "explains"}


def _num(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else np.nan


class FeaturesView(View):
    """Ranked features (drift, coverage, staleness, skew, attribution), before/after, coverage over time."""

    top = param.Integer(default=30, bounds=(1, 500), doc="How many ranked features to list.")

    @classmethod
    def prefetch(cls, results, state) -> None:
        w = state.windows
        if w is None or not results.case.features:
            return
        drift = results.drift(*w)
        results.feature_timeline(tuple(results.case.features))
        if results.case.training is not None:
            results.skew(w[1])
        # where the most broken features broke, slice by slice: selecting a slice then needs no scan for them
        broken = drift.table.filter((pl.col("kind") != "none") & (pl.col("type") != "categorical"))
        if results.case.slices:
            for feature in broken["feature"].head(3):
                results.feature_by_slice(feature, *w)

    def __init__(self, state, results, **params):
        super().__init__(state, results, **params)
        self.available = bool(results.case.features)
        self.drift: Any = None  # the FeatureDrift of the current windows, once computed
        self.table = pn.widgets.Tabulator(pl.DataFrame().to_pandas(), show_index=False, disabled=True, selectable=1,
                                          height=330, sizing_mode="stretch_width", layout="fit_data_stretch",
                                          css_classes=["wb-feature-table"], pagination=None, header_align="left")
        self.table.on_click(self._on_click)
        self.head = pn.pane.HTML("", stylesheets=[CSS], sizing_mode="stretch_width")
        self.facts = pn.pane.HTML("", stylesheets=[CSS], sizing_mode="stretch_width")
        self.dist_pane = pn.pane.HoloViews(None, sizing_mode="stretch_width", margin=(0, 8))
        self.time_pane = pn.pane.Bokeh(None, sizing_mode="stretch_width", margin=(0, 8))
        self.time_overlays: dict[str, hv.Overlay] = {}
        self.time_sources: dict[str, ColumnDataSource] = {}
        self._time_figures: dict[str, Any] = {}
        self._time_spans: list[tuple[BoxAnnotation, BoxAnnotation]] = []
        self.slice_box = pn.pane.HTML("", stylesheets=[CSS], sizing_mode="stretch_width")
        self._version = 0  # bumped when the windows (and so the drift table) change
        self._feature_stream = hv.streams.Stream.define("Feature", feature=state.feature, version=0)()
        if not self.available:
            return
        self._timeline = results.feature_timeline(tuple(results.case.features))
        self._refresh_windows()
        state.param.watch(self._on_windows, ["baseline", "incident"])
        state.param.watch(self._on_feature, "feature")
        state.param.watch(self._on_slice, "slice")

    # ------------------------------------------------------------------ results for the current windows
    def _refresh_windows(self) -> None:
        w = self.state.windows
        if w is None:
            return
        if self.results.has(("feature_drift", *w)) or self.results._from_diagnosis("feature_drift", w) is not None:
            self._take(self.results.drift(*w))
        else:
            def done(r: Any) -> None:  # only if the windows did not change meanwhile
                if self.state.windows == w:
                    self._take(r)

            self.run_long(f"measuring feature drift for baseline {w[0]} vs incident {w[1]}…", lambda: self.results.drift(*w), done)

    @guarded("following the new windows")
    def _on_windows(self, *_events: param.parameterized.Event) -> None:
        self._refresh_windows()

    def _take(self, drift: Any) -> None:
        self.drift = drift
        self._version += 1
        self._ranked = self._ranked_table()
        self.table.value = self._ranked.rename({k: v for k, v in TABLE_COLUMNS.items() if k in self._ranked.columns}).to_pandas()
        self.table.formatters = {v: {"type": "progress",
                                     "max": float(max(cast(float | None, self._ranked["severity"].max()) or 1, 1e-9)),
                                     "color": RED}
                                 for k, v in TABLE_COLUMNS.items() if k == "severity"}
        broken = drift.table.filter(pl.col("kind") != "none")
        self.head.object = (f"<div class='wb-h'>Features ranked by severity</div><div class='wb-muted'>{broken.height} of "
                            f"{drift.table.height} features broke between baseline {escape(str(drift.baseline))} and incident "
                            f"{escape(str(drift.incident))}. Severity is the JS distance in excess of the feature's usual drift "
                            "(an effect size). Click a row to open a feature.</div>")
        features = self._ranked["feature"].to_list()
        if self.state.feature not in features:
            first = broken["feature"][0] if broken.height else (features[0] if features else None)
            with param.parameterized.discard_events(self.state):
                self.state.feature = first
        self._render()

    def _ranked_table(self) -> pl.DataFrame:
        """The columns shown: the drift table, joined with skew and attribution when they were computed."""
        t = self.drift.table.head(self.top)
        keep = [c for c in TABLE_COLUMNS if c in t.columns]
        out = t.select(keep)
        w = self.state.windows
        if self.results.case.training is not None and w is not None and self.results.has(("training_skew", w[1])):
            skew = self.results.skew(w[1]).table.select("feature", pl.col("severity").alias("skew"))
            out = out.join(skew, on="feature", how="left")
        if w is not None and self.results.has(("isolation", *w)):
            iso = self.results.isolation(*w).table
            if "explained" in iso.columns:
                out = out.join(iso.select("feature", "explained"), on="feature", how="left")
        floats = [c for c, dt in out.schema.items() if dt == pl.Float64]
        return out.with_columns(pl.col(floats).round(3))

    # ------------------------------------------------------------------ interaction
    @guarded("opening the feature")
    def _on_click(self, event: Any) -> None:
        row = getattr(event, "row", None)
        if row is None or self.drift is None:
            return
        self.state.feature = self._ranked["feature"][row]

    def _on_feature(self, *_events: param.parameterized.Event) -> None:
        self._render()

    @guarded("following the selected slice")
    def _on_slice(self, *_events: param.parameterized.Event) -> None:
        self._render_slice()

    @guarded("drawing the feature")
    def _render(self) -> None:
        self.timed(self._draw)

    def _draw(self) -> None:
        f = self.state.feature
        if self.drift is None or not f:
            return
        rows = self.drift.table.filter(pl.col("feature") == f)
        if rows.is_empty():
            return
        r = rows.row(0, named=True)
        idx = self._ranked["feature"].to_list().index(f) if f in self._ranked["feature"].to_list() else None
        if idx is not None and self.table.selection != [idx]:
            self.table.selection = [idx]
        color = KIND_COLORS.get(r["kind"], "#6b7280")
        facts = {"kind": r["kind"], "severity": f"{_num(r['severity']):.3f}", "PSI": f"{_num(r['psi']):.3f}",
                 "coverage": f"{_num(r['coverage_baseline']):.1%} → {_num(r['coverage_incident']):.1%}",
                 "scale ratio": f"{_num(r['scale_ratio']):.3g}",
                 "repeated values": f"{_num(r['repeat_share_baseline']):.1%} → {_num(r['repeat_share_incident']):.1%}",
                 # what the staleness rule reads (workbench.data.drift._fewer_values): a frozen feed uses far fewer
                 "values in effective use": f"{_num(r.get('effective_baseline')):.3g} → {_num(r.get('effective_incident')):.3g}"}
        self.facts.object = (f"<div class='wb-h'><span style='color:{color}'>&#9679;</span> {escape(f)} "
                             f"<span class='wb-muted'>(rank {r['rank']})</span></div>{kv(facts)}")
        # DynamicMaps over (feature, version): a new feature only updates the plots' data, no new figures.
        if self.dist_pane.object is None:
            self.dist_pane.object = hv.DynamicMap(self._distribution, streams=[self._feature_stream])
            self.time_pane.object = self._time_figure()
        self.dist_pane.visible = r["type"] != "categorical"
        self._feature_stream.event(feature=f, version=self._version)
        self._update_time(f)
        self._render_slice()

    def _distribution(self, feature: str | None, version: int) -> hv.Overlay:
        """Before/after from the drift table: p01-p99 range, median, mean ± std, per window."""
        rows = self.drift.table.filter(pl.col("feature") == feature) if self.drift is not None and feature else None
        if rows is None or rows.is_empty() or rows["type"][0] == "categorical":
            rows = self.drift.table.filter(pl.col("type") != "categorical").head(1) if self.drift is not None else None
        r = rows.row(0, named=True) if rows is not None and rows.height else None
        if r is None:
            r = dict.fromkeys(self.drift.table.columns if self.drift is not None else [], None) | {"feature": ""}
        # Three elements for both windows (a colour column tells them apart): fewer glyphs, faster updates.
        bands, lines, marks = [], [], []
        for y, suffix in enumerate(("baseline", "incident")):
            p01, p50, p99 = (_num(r[f"{q}_{suffix}"]) for q in ("p01", "p50", "p99"))
            mean, std = _num(r[f"mean_{suffix}"]), _num(r[f"std_{suffix}"])
            bands.append((p01, y, p99, y, suffix))
            lines.append((mean - std, y, mean + std, y, suffix))
            marks += [(p50, y, suffix, "median"), (mean, y, suffix, "mean")]
        cmap = {"baseline": BASELINE_COLOR, "incident": INCIDENT_COLOR}
        seg = ["x0", "y0", "x1", "y1"]
        layers = [hv.Segments(bands, seg, "window").opts(color="window", cmap=cmap, line_width=12, alpha=0.3),
                  hv.Segments(lines, seg, "window").opts(color="window", cmap=cmap, line_width=3),
                  hv.Points(marks, ["x", "y"], ["window", "stat"]).opts(color="window", cmap=cmap, marker="diamond", size=13,
                                                                        tools=["hover"])]
        return hv.Overlay(layers).opts(
            title=f"{r['feature']} before and after: p01–p99 (band), mean ± std (line), median and mean (◆)",
            height=170, responsive=True, min_width=400, ylim=(-0.7, 1.7), yticks=[(0, "baseline"), (1, "incident")],
            ylabel="", xlabel="value", show_legend=False,
            framewise=True, **{k: v for k, v in PLOT_OPTS.items() if k != "fontscale"})

    def _time_figure(self) -> Any:
        """Coverage and mean per hour: HoloViews draws the frame once, a new feature only replaces the line data."""
        x = to_datetime64(self._timeline["window"].unique().sort().to_list())
        figures: list[Any] = []  # bokeh figures, from holoviews (untyped)
        for column, color, what in (("coverage", "#059669", "coverage (non-null share)"), ("mean", "#2563eb", "mean of non-null values")):
            dim = hv.Dimension(column, range=(0, 1.05)) if column == "coverage" else hv.Dimension(column)
            overlay = hv.Overlay([hv.Curve((x, np.full(len(x), np.nan)), "time", dim)]).opts(
                title=what, height=150, responsive=True, min_width=400, show_grid=True, xlabel="",
                **{k: v for k, v in PLOT_OPTS.items() if k != "fontscale"})
            fig = hv.render(overlay, backend="bokeh")
            if figures:
                fig.x_range = figures[0].x_range
            base = BoxAnnotation(fill_color=BASELINE_COLOR, fill_alpha=0.12, line_alpha=0, level="underlay")
            inc = BoxAnnotation(fill_color=INCIDENT_COLOR, fill_alpha=0.12, line_alpha=0, level="underlay")
            fig.add_layout(base)
            fig.add_layout(inc)
            src = ColumnDataSource({"x": x, "y": np.full(len(x), np.nan)})
            fig.line("x", "y", source=src, color=color, line_width=2)
            self.time_overlays[column], self.time_sources[column], self._time_figures[column] = overlay, src, fig
            self._time_spans.append((base, inc))
            figures.append(fig)
        return bk_column(figures, sizing_mode="stretch_width")

    def _update_time(self, feature: str) -> None:
        tl = self._timeline.filter(pl.col("feature") == feature).sort("window")
        x = to_datetime64(tl["window"].to_list())
        for column, src in self.time_sources.items():
            src.data = {"x": x, "y": tl[column].cast(pl.Float64).fill_null(np.nan).to_numpy()}
            what = "coverage (non-null share)" if column == "coverage" else "mean of non-null values"
            self._time_figures[column].title.text = f"{feature}: {what} per hour"
        for base, inc in self._time_spans:
            for box, window in ((base, self.state.baseline), (inc, self.state.incident)):
                left, right = (None, None) if window is None else (window[0].timestamp() * 1e3, window[1].timestamp() * 1e3)
                if box.left != left or box.right != right:
                    box.update(left=left, right=right)
        pn.io.push_notebook(self.time_pane)  # Bokeh models changed directly: tell a notebook front end

    # ------------------------------------------------------------------ the selected slice
    def _render_slice(self) -> None:
        label, f, w = self.state.slice, self.state.feature, self.state.windows
        if not label or not f or w is None or not self.results.case.slices:
            self.slice_box.object = ""
            return
        if self.drift is not None and not self.drift.table.filter((pl.col("feature") == f) & (pl.col("type") == "categorical")).is_empty():
            self.slice_box.object = ""
            return
        if self.results.has(("feature_by_slice", f, *w)):
            self.slice_box.object = self._slice_text(self.results.feature_by_slice(f, *w), label)
        else:
            self.slice_box.object = ""
            self.run_long(f"locating where {f} broke, slice by slice…", lambda: self.results.feature_by_slice(f, *w),
                          lambda r: self._render_slice() if self.state.feature == f else None)

    def _slice_text(self, fs: Any, label: str) -> str:
        row = fs.table.filter(pl.col("slice") == label)
        where = (f"{escape(fs.feature)} broke only in <b>{escape(fs.top['slice'])}</b>" if fs.concentrated and fs.top
                 else f"{escape(fs.feature)} did not break in one slice only")
        if row.is_empty():
            return f"<div class='wb-summary'>{where}. No rows for {escape(label)} in these windows.</div>"
        r = row.row(0, named=True)
        inside = f"JS {_num(r['js']):.3f} inside (G test p {_num(r['p']):.2g})"
        return (f"<div class='wb-summary'>In <b style='color:#7c3aed'>{escape(label)}</b>: {inside} vs "
                f"{_num(r['js_rest']):.3f} in the rest; coverage {_num(r['coverage_baseline']):.1%} → "
                f"{_num(r['coverage_incident']):.1%}, mean {_num(r['mean_baseline']):.4g} → {_num(r['mean_incident']):.4g}. "
                f"{where}.</div>")

    # ------------------------------------------------------------------ layout
    def _build(self) -> pn.viewable.Viewable:
        if not self.available:
            return pn.Column(self.error, pn.pane.HTML("<div class='wb-muted'>This case maps no feature columns: map them in "
                                                      "workbench.toml ([columns] features = [\"f_*\"]).</div>", stylesheets=[CSS]))
        return pn.Column(self.error, self.status, self.head, self.table, self.facts, self.slice_box, self.dist_pane, self.time_pane,
                         sizing_mode="stretch_width")

    def code(self) -> str:
        lines = ["from workbench import Window, feature_drift, feature_timeline, open_case", "",
                 f"case = open_case({str(self.results.case.root)!r})"]
        if self.state.windows:
            b, i = self.state.windows
            lines += [f"baseline = Window({b.start.isoformat()!r}, {b.end.isoformat()!r})",
                      f"incident = Window({i.start.isoformat()!r}, {i.end.isoformat()!r})",
                      "print(feature_drift(case, baseline, incident))"]
            if self.state.feature:
                lines.append(f"feature_timeline(case, [{self.state.feature!r}])")
                if self.state.slice:
                    lines += ["from workbench import feature_by_slice",
                              f"print(feature_by_slice(case, {self.state.feature!r}, baseline, incident))"]
        return "\n".join(lines)
