"""The model side: the snapshot timeline with its verdicts, weight change per layer, one parameter, activations.

It draws ``workbench.model.diff.snapshot_timeline`` (each snapshot judged against
the case's benign refreshes), ``diff_state_dicts`` of every snapshot against the
stable one (the heatmap: parameters by snapshots, colour = log10 of the relative L2
change, NaN/Inf and new dead units marked), the selected parameter's values in
the stable and the selected snapshot (histograms), the validator's verdict
(``workbench.model.validation.validate_snapshot``) and the layer-by-layer activation
diff (``workbench.model.activations.compare_activations``). The snapshot near the onset
is prefetched; validating or tracing another one is long work, run on demand.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import param
import polars as pl

from workbench_widgets._base import View, guarded
from workbench_widgets._plots import to_datetime64
from workbench_widgets._style import CSS, GRAY, GREEN, PLOT_OPTS, RED, kv

__all__ = ["SnapshotsView"]

Z_GATE = 3.5  # drawn as the alarm line; the value is workbench.model.diff.Z_GATE (read at draw time when present)


def _finite(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else np.nan


def _z_and_gate(t: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, float]:
    """z and its gate per row for drawing: +inf z (a hard gate) is drawn at the top of the axis."""
    raw = t["z"].to_list() if "z" in t.columns else t["score"].to_list()
    gate = np.array([_finite(v) for v in (t["gate"].to_list() if "gate" in t.columns else [Z_GATE] * t.height)])
    gate = np.where(np.isnan(gate), Z_GATE, gate)
    z = np.array([_finite(v) for v in raw])
    inf = np.array([isinstance(v, float) and math.isinf(v) and v > 0 for v in raw])
    top = float(np.nanmax(np.r_[np.abs(z[~np.isnan(z)]), gate, Z_GATE * 2])) * 1.15
    return np.where(inf, top, np.nan_to_num(z, nan=0.0)), gate, top


def _zfmt(v: Any) -> str:
    if v is None:
        return "—"
    return "∞" if isinstance(v, float) and math.isinf(v) else f"{_finite(v):.1f}"


class SnapshotsView(View):
    """Snapshot verdicts, per-layer weight change against the stable snapshot, parameter histograms, activation diff."""

    bins = param.Integer(default=40, bounds=(5, 200), doc="Histogram bins for a parameter's values.")

    @classmethod
    def prefetch(cls, results, state) -> None:
        if not results.case.snapshots:
            return
        timeline = results.snapshot_timeline()
        stable = timeline.stable_id
        for sid in timeline.table["snapshot_id"]:
            if sid != stable:
                results.weight_diff(stable, sid)
        focus = cls._focus(results, timeline)
        if focus and results.case.model is not None:
            prev = timeline.table.filter(pl.col("snapshot_id") == focus)["compared_to"][0]
            if prev:
                results.activations(prev, focus)

    @staticmethod
    def _focus(results, timeline) -> str | None:
        """The snapshot to open first: the root cause's, else the first in alarm, else the latest."""
        d = results.diagnosis()
        for c in d.root_causes:
            if c.kind == "snapshot":
                return c.target
        return timeline.first_bad or (timeline.table["snapshot_id"][-1] if timeline.table.height else None)

    def __init__(self, state, results, **params):
        super().__init__(state, results, **params)
        self.available = bool(results.case.snapshots)
        if not self.available:
            return
        self.timeline = results.snapshot_timeline()
        self.table = self.timeline.table
        self.ids = self.table["snapshot_id"].to_list()
        self.stable = self.timeline.stable_id
        if state.snapshot not in self.ids:
            state.snapshot = self._focus(results, self.timeline)
        self.snapshot_select = pn.widgets.Select(label="snapshot", options=self.ids, value=state.snapshot, width=200)
        self.snapshot_select.param.watch(lambda e: setattr(self.state, "snapshot", e.new), "value")
        self.params_all = self._param_names()
        if state.parameter not in self.params_all:
            state.parameter = self._default_parameter()
        self.param_select = pn.widgets.Select(label="parameter", options=self.params_all, value=state.parameter, width=260)
        self.param_select.param.watch(lambda e: setattr(self.state, "parameter", e.new), "value")
        self.validate_btn = pn.widgets.Button(label="Validate this snapshot", width=200, css_classes=["wb-validate"])
        self.validate_btn.on_click(lambda _e: self.validate())
        self.trace_btn = pn.widgets.Button(label="Trace activations", width=200)
        self.trace_btn.on_click(lambda _e: self.trace())
        self.timeline_pane = pn.pane.HoloViews(self._timeline_plot(), sizing_mode="stretch_width", margin=(0, 8))
        self.heatmap_pane = pn.pane.HoloViews(self._heatmap(), sizing_mode="stretch_width", margin=(0, 8))
        self.hist_pane = pn.pane.HoloViews(None, sizing_mode="stretch_width", margin=(0, 8))
        self.act_pane = pn.pane.HoloViews(None, sizing_mode="stretch_width", margin=(0, 8))
        self.facts = pn.pane.HTML("", stylesheets=[CSS], sizing_mode="stretch_width")
        self._version = 0  # bumped when a validation or an activation trace arrives
        self._stream = hv.streams.Stream.define("Snapshot", snapshot=state.snapshot, parameter=state.parameter, version=0)()
        self._act_stream = hv.streams.Stream.define("Activations", snapshot=None, version=-1)()
        self._render()
        state.param.watch(self._on_state, ["snapshot", "parameter"])

    # ------------------------------------------------------------------ data access (cached workbench results)
    def _param_names(self) -> list[str]:
        other = next((s for s in reversed(self.ids) if s != self.stable), self.stable)
        return self.results.weight_diff(self.stable, other).table["name"].to_list()

    def _default_parameter(self) -> str | None:
        if self.timeline.first_bad:
            bad = self.timeline.bad_parameters
            if bad:
                return bad[0]
        row = self.table.filter(pl.col("snapshot_id") == self.state.snapshot)
        top = row["top_parameter"][0] if row.height else None
        return top if top in self.params_all else (self.params_all[0] if self.params_all else None)

    # ------------------------------------------------------------------ plots
    def _timeline_plot(self) -> hv.Overlay:
        t = self.table
        x = to_datetime64(t["published_at"].to_list())
        z, gate, top = _z_and_gate(t)
        verdict = ["stable" if s_ else ("alarm" if a else "ok") for s_, a in zip(t["stable"], t["alarm"], strict=True)]
        data = {"published": x, "z": z, "gate": gate, "snapshot": t["snapshot_id"].to_list(), "verdict": verdict,
                "reason": [r or "" for r in t["reason"].to_list()],
                "rel_l2_vs_stable": [_finite(v) for v in t["rel_l2_vs_stable"].to_list()]}
        pts = hv.Points(data, ["published", "z"], ["snapshot", "verdict", "gate", "reason", "rel_l2_vs_stable"]).opts(
            color="verdict", cmap={"alarm": RED, "ok": GREEN, "stable": "#1e40af"}, size=12, line_color="white",
            tools=["hover", "tap"], show_legend=True, legend_position="top_left")
        gates = hv.Scatter((x, gate), "published", "gate", label="alarm gate").opts(marker="dash", size=18, color="#6b7280",
                                                                                     angle=0, line_width=2)
        # name only the snapshots that matter here (the stable one, alarms, the focus): all names would overlap
        focus = self._focus(self.results, self.timeline)
        keep = [i for i, (sid, v) in enumerate(zip(data["snapshot"], verdict, strict=True)) if v != "ok" or sid == focus]
        labels = hv.Labels({"published": x[keep], "z": z[keep], "snapshot": [data["snapshot"][i] for i in keep]},
                           ["published", "z"], "snapshot").opts(text_font_size="8pt", yoffset=top * 0.08, text_color="#374151")
        tap = hv.streams.Selection1D(source=pts)
        tap.add_subscriber(self._on_tap)
        self._tap = tap
        d = self.results.diagnosis()
        layers = [gates, pts, labels]
        if d.anomaly.get("onset"):
            layers.insert(0, hv.VLine(to_datetime64([d.anomaly["onset"]])[0], label="onset").opts(color=RED, line_width=1,
                                                                                                   line_dash="dashed"))
        return hv.Overlay(layers).opts(
            title="Snapshots: change vs benign refreshes (robust z; grey dash: alarm gate)",
            height=240, responsive=True, min_width=500, ylabel="robust z", xlabel="published", show_grid=True,
            **{k: v for k, v in PLOT_OPTS.items() if k != "fontscale"})

    def _heatmap(self) -> hv.Overlay:
        rows = []
        marks = []
        for sid in self.ids:
            if sid == self.stable:
                continue
            diff = self.results.weight_diff(self.stable, sid).table
            for r in diff.iter_rows(named=True):
                rel = r["rel_l2"]
                value = 2.0 if rel is not None and math.isinf(rel) else (math.log10(max(rel, 1e-6)) if rel is not None else np.nan)
                rows.append((sid, r["name"], value, _finite(rel)))  # numeric vdims only: HoloViews aggregates them
                new_dead = (r["dead_units"] or 0) - (r["dead_units_before"] or 0)
                if r["nonfinite"]:
                    marks.append((sid, r["name"], "NaN"))
                elif new_dead > 0:
                    marks.append((sid, r["name"], f"{new_dead} dead"))
        heat = hv.HeatMap(rows, ["snapshot", "parameter"], [hv.Dimension("log10_rel_l2", label="log10 rel. L2 vs stable"),
                                                             hv.Dimension("rel_l2", label="rel. L2 (NaN: non-finite)")])
        heat = heat.opts(cmap="viridis", colorbar=True, tools=["hover", "tap"], xrotation=45, clim=(-4, 1),
                         clipping_colors={"NaN": "#f3f4f6"})
        labels = hv.Labels(marks or [(self.ids[-1], self.params_all[0] if self.params_all else "", "")],
                           ["snapshot", "parameter"], "text").opts(text_color="white", text_font_size="8pt", text_font_style="bold")
        n = max(len(self.params_all), 1)
        title = f"Weight change vs the stable snapshot {self.stable} (log10 rel. L2; NaN: NaN/Inf, dead: new zero rows)"
        return (heat * labels).opts(title=title, height=min(120 + 22 * n, 700), responsive=True, min_width=500,
                                    **{k: v for k, v in PLOT_OPTS.items() if k != "fontscale"})

    def _histogram(self, snapshot: str | None, parameter: str | None, version: int) -> hv.Overlay:
        name, sid = parameter, snapshot
        if not name or not sid:
            return hv.Overlay([hv.Histogram(([0, 1], [0]))])
        before = self.results.state_dict(self.stable).get(name)
        after = self.results.state_dict(sid).get(name)
        layers, finite_all = [], []
        for t in (before, after):
            if t is not None and t.is_floating_point():
                v = t.detach().double().flatten().numpy()
                finite_all.append(v[np.isfinite(v)])
        pool = np.concatenate(finite_all) if finite_all else np.zeros(1)
        lo, hi = (float(pool.min()), float(pool.max())) if pool.size else (0.0, 1.0)
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, self.bins + 1)
        # fixed labels (the snapshot id is in the title): a changing label would rebuild the figure
        for label, t, color in (("stable", before, "#1e40af"), ("selected", after, RED)):
            if t is None or not t.is_floating_point():
                continue
            v = t.detach().double().flatten().numpy()
            counts, _ = np.histogram(v[np.isfinite(v)], bins=edges)  # binning for display only
            layers.append(hv.Histogram((edges, counts), kdims=[hv.Dimension("value", label=name)], vdims=["count"], label=label)
                          .opts(fill_color=color, fill_alpha=0.4, line_color=color))
        if not layers:
            layers = [hv.Histogram(([0, 1], [0]))]
        return hv.Overlay(layers).opts(title=f"{name}: stable (blue) vs {sid} (red)", height=250,
                                       responsive=True, min_width=400, legend_position="top_right", framewise=True,
                                       **{k: v for k, v in PLOT_OPTS.items() if k != "fontscale"})

    def _activation_dmap(self, snapshot: str | None, version: int) -> hv.Overlay:
        diff = self._activation_for(snapshot, compute=False)
        if diff is None:
            return (hv.Bars([], "layer", "z") * hv.Scatter([], "layer", "z")).opts(
                title=f"Activations: not traced for {snapshot} (use “Trace activations”)", height=260, responsive=True,
                min_width=400, show_legend=False)
        return self._activation_plot(diff)

    def _activation_plot(self, diff: Any) -> hv.Overlay:
        t = diff.table.sort("order")
        z, gate, _top = _z_and_gate(t)
        flag = ["first divergent" if lay == diff.first_divergent_layer else ("diverged" if d else "within benign")
                for lay, d in zip(t["layer"], t["diverged"], strict=True)]
        names = [f"{o}. {lay}" for o, lay in zip(t["order"], t["layer"], strict=True)]
        bars = hv.Bars({"layer": names, "z": z, "flag": flag, "gate": gate, "rel_diff": [_finite(v) for v in t["rel_diff"].to_list()]},
                       "layer", ["z", "flag", "gate", "rel_diff"]).opts(
            color="flag", cmap={"first divergent": RED, "diverged": "#f97316", "within benign": GRAY}, tools=["hover"],
            xrotation=30, show_legend=False)
        gates = hv.Scatter((names, gate), "layer", "z").opts(marker="dash", size=22, color="#374151", line_width=2)
        return (bars * gates).opts(framewise=True,
                                   title=f"Activation change vs {diff.snapshot_a} by layer "
                                         f"(first to diverge: {diff.first_divergent_layer or 'none'})",
                                   height=260, responsive=True, min_width=400, ylabel="robust z", show_legend=False,
                                   **{k: v for k, v in PLOT_OPTS.items() if k != "fontscale"})

    # ------------------------------------------------------------------ interaction
    @guarded("selecting the snapshot")
    def _on_tap(self, index: list[int]) -> None:
        if index:
            self.state.snapshot = self.ids[index[0]]

    def _on_state(self, *_events: param.parameterized.Event) -> None:
        self._render()

    @guarded("drawing the snapshot")
    def _render(self) -> None:
        self.timed(self._draw)

    def _draw(self) -> None:
        sid = self.state.snapshot
        if self.snapshot_select.value != sid:
            self.snapshot_select.value = sid
        if self.param_select.value != self.state.parameter:
            self.param_select.value = self.state.parameter
        if self.hist_pane.object is None:  # DynamicMaps: a new snapshot or parameter only updates the plots' data
            self.hist_pane.object = hv.DynamicMap(self._histogram, streams=[self._stream])
            self.act_pane.object = hv.DynamicMap(self._activation_dmap, streams=[self._act_stream])
        self._stream.event(snapshot=sid, parameter=self.state.parameter, version=self._version)
        if (self._act_stream.snapshot, self._act_stream.version) != (sid, self._version):  # not on a parameter switch
            self._act_stream.event(snapshot=sid, version=self._version)
        row = self.table.filter(pl.col("snapshot_id") == sid).row(0, named=True) if sid in self.ids else None
        facts = {}
        if row:
            facts = {"published": f"{row['published_at']:%Y-%m-%d %H:%M}", "compared to": row["compared_to"] or "—",
                     "verdict": "ALARM" if row["alarm"] else ("stable" if row["stable"] else "ok"),
                     "robust z": _zfmt(row.get("z", row.get("score")))}
        valid = self._validation_text(sid)
        reason = f"<div class='wb-summary'>{escape(row['reason'])}</div>" if row and row["reason"] else ""
        self.facts.object = f"<div class='wb-h'>{escape(sid or '')}</div>{kv(facts)}{reason}{valid}"
        act = self._activation_for(sid, compute=False)
        self.trace_btn.visible = act is None and self.results.case.model is not None and row is not None and bool(row["compared_to"])

    def _validation_text(self, sid: str | None) -> str:
        if not sid or not self.results.has(("validation", sid)):
            return "<div class='wb-muted'>validator: not run for this snapshot</div>"
        v = self.results.validation(sid)
        verdict = "passes" if v.passed else "fails"
        reasons = "; ".join(getattr(v, "reasons", ())[:3])
        return f"<div class='wb-summary'>validator: <b>{verdict}</b> against {escape(str(v.reference_id))}. {escape(reasons)}</div>"

    def _activation_for(self, sid: str | None, compute: bool) -> Any:
        if not sid:
            return None
        row = self.table.filter(pl.col("snapshot_id") == sid)
        prev = row["compared_to"][0] if row.height else None
        if not prev:
            return None
        if compute or self.results.has(("activations", prev, sid)):
            return self.results.activations(prev, sid)
        return None

    def validate(self) -> None:
        """Run the validator on the selected snapshot (long work: re-scores holdout rows)."""
        sid = self.state.snapshot
        # with no snapshot selected, None goes on and the case reports "no snapshot 'None'" in the error pane
        self.run_long(f"validating {sid} on holdout rows…", lambda: self.results.validation(sid), self._arrived)  # type: ignore[arg-type]

    def trace(self) -> None:
        """Compare the selected snapshot's activations with its predecessor's (long work)."""
        sid = self.state.snapshot
        self.run_long(f"tracing activations of {sid}…", lambda: self._activation_for(sid, compute=True), self._arrived)

    def _arrived(self, _result: Any) -> None:
        self._version += 1
        self._render()

    # ------------------------------------------------------------------ layout
    def _build(self) -> pn.viewable.Viewable:
        if not self.available:
            return pn.Column(self.error, pn.pane.HTML("<div class='wb-muted'>This case lists no snapshots "
                                                      "(snapshots/index.csv): the model-side views are not available.</div>",
                                                      stylesheets=[CSS]))
        controls = pn.Row(self.snapshot_select, self.param_select, pn.Column(pn.Spacer(height=18), self.validate_btn),
                          pn.Column(pn.Spacer(height=18), self.trace_btn))
        return pn.Column(self.error, self.status, self.timeline_pane, controls, self.facts,
                         pn.Row(self.hist_pane, self.act_pane, sizing_mode="stretch_width"), self.heatmap_pane,
                         sizing_mode="stretch_width")

    def code(self) -> str:
        sid = self.state.snapshot
        lines = ["from workbench import diff_state_dicts, load_state_dict, open_case, snapshot_timeline", "",
                 f"case = open_case({str(self.results.case.root)!r})", "timeline = snapshot_timeline(case)", "print(timeline)"]
        if sid and self.available:
            lines += [f"diff = diff_state_dicts(load_state_dict(case.snapshot({self.stable!r}).path), "
                      f"load_state_dict(case.snapshot({sid!r}).path))", "print(diff)",
                      "from workbench import validate_snapshot", f"validate_snapshot(case, {sid!r})"]
            row = self.table.filter(pl.col("snapshot_id") == sid)
            if row.height and row["compared_to"][0]:
                lines += ["from workbench import compare_activations",
                          f"print(compare_activations(case, {row['compared_to'][0]!r}, {sid!r}))"]
        return "\n".join(lines)
