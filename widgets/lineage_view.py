"""The upstream lineage: tables → pipelines → features, with the broken features and the implicated node.

Layout is a plain layered drawing computed from the DAG (no graphviz binary): a
node's column is its longest distance from a source; within a column, nodes are
ordered by the mean row of their parents (one barycentre pass, which removes most
crossings in lineage graphs), then spread evenly. Colours come from the diagnosis:
the implicated upstream node (an ``upstream`` root cause) in red, the features the
checks found broken in orange, everything downstream of the implicated node shaded.
Clicking a feature opens it in the feature view.
"""

from __future__ import annotations

from collections import defaultdict
from html import escape
from typing import TYPE_CHECKING

import holoviews as hv
import numpy as np
import panel as pn
import param

from workbench_widgets._base import View, guarded
from workbench_widgets._style import AMBER, BLUE, CSS, GRAY, RED

if TYPE_CHECKING:
    from workbench import Lineage

__all__ = ["LineageView", "layered_layout"]

STATUS_COLORS = {"implicated": RED, "broken": AMBER, "affected": "#fca5a5", "table": "#1e40af", "pipeline": BLUE,
                 "feature": GRAY, "node": GRAY}
STATUS_SIZE = {"implicated": 22, "broken": 16, "affected": 13}


def layered_layout(lineage: Lineage) -> dict[str, tuple[float, float]]:
    """``node -> (column, row)``: column = longest path from a source (sinks in the last column),
    rows ordered by their parents' mean row."""
    parents: dict[str, list[str]] = defaultdict(list)
    for a, b in lineage.edges:
        parents[b].append(a)
    depth: dict[str, int] = {}

    def level(node: str) -> int:  # the graph is a validated DAG, so this terminates
        if node not in depth:
            depth[node] = 1 + max((level(p) for p in parents[node]), default=-1)
        return depth[node]

    for node in lineage.kinds:
        level(node)
    # Sinks (the feature columns) all go to the last column: they are what the model reads, side by side.
    has_children = {a for a, _ in lineage.edges}
    last = max(depth.values(), default=0)
    for node in lineage.kinds:
        if node not in has_children and parents[node]:
            depth[node] = last
    columns: dict[int, list[str]] = defaultdict(list)
    for node in lineage.kinds:
        columns[depth[node]].append(node)
    row: dict[str, float] = {}
    for col in sorted(columns):
        nodes = columns[col]
        key = {n: (np.mean([row[p] for p in parents[n]]) if parents[n] else i, n) for i, n in enumerate(sorted(nodes))}
        nodes.sort(key=lambda n: key[n])
        span = max(len(nodes) - 1, 1)
        for i, n in enumerate(nodes):
            row[n] = 1.0 - i / span if len(nodes) > 1 else 0.5
    return {n: (float(depth[n]), row[n]) for n in lineage.kinds}


class LineageView(View):
    """The upstream graph with the broken features and the implicated node highlighted."""

    show_labels = param.Boolean(default=True, doc="Write node names next to the nodes.")
    width = param.Integer(default=900, bounds=(300, 3000), doc="Plot width in pixels.")

    def __init__(self, state, results, **params):
        super().__init__(state, results, **params)
        self.lineage = results.case.lineage
        self.pane = pn.pane.HoloViews(None, sizing_mode="fixed", margin=(4, 8))
        self.legend = pn.pane.HTML("", stylesheets=[CSS], sizing_mode="stretch_width")
        self._tap = None
        if self.lineage is not None:
            self.status_of = self._statuses()
            self.plot = self._plot()
            self.pane.object = self.plot

    def _statuses(self) -> dict[str, str]:
        """Colour class per node, read from the diagnosis (root causes and the candidates checks raised)."""
        d = self.results.diagnosis()
        lineage = self.lineage
        implicated = {c.target for c in d.root_causes if c.kind == "upstream" and c.target in lineage.kinds}
        broken = {f"feature:{c.target}" for c in d.root_causes if c.kind == "feature"}
        for _path, ev in d.steps:
            broken |= {f"feature:{c.target}" for c in ev.candidates if c.kind == "feature"}
        affected = set().union(*(lineage.descendants(n) for n in implicated)) if implicated else set()
        out = {}
        for node, kind in lineage.kinds.items():
            if node in implicated:
                out[node] = "implicated"
            elif node in broken:
                out[node] = "broken"
            elif node in affected:
                out[node] = "affected"
            else:
                out[node] = kind if kind in STATUS_COLORS else "node"
        return out

    def _plot(self) -> hv.Overlay:
        pos = layered_layout(self.lineage)
        ids = list(self.lineage.kinds)
        status = self.status_of
        xs, ys = np.array([pos[n][0] for n in ids]), np.array([pos[n][1] for n in ids])
        n_rows = max(sum(1 for n in ids if pos[n][0] == c) for c in set(xs))
        height = int(min(max(260, 24 * n_rows + 60), 1100))
        nodes = hv.Nodes((xs, ys, ids, [self.lineage.kinds[n] for n in ids], [status[n] for n in ids],
                          [STATUS_SIZE.get(status[n], 10) for n in ids]),
                         vdims=["kind", "status", "size"])
        hot = {n for n, s in status.items() if s in ("implicated", "broken", "affected")}
        edges = [(a, b, "hot" if a in hot and b in hot else "cold") for a, b in self.lineage.edges]
        graph = hv.Graph((edges, nodes), vdims="flow").opts(
            node_color="status", cmap=STATUS_COLORS, node_size="size", edge_color="flow",
            edge_cmap={"hot": RED, "cold": "#d1d5db"}, edge_line_width=1.5, node_line_color="white",
            tools=["hover", "tap"], inspection_policy="nodes",
            xaxis=None, yaxis=None, width=self.width, height=height, padding=(0.05, 0.06), show_frame=False,
            title="Upstream lineage", toolbar="above", default_tools=["save", "reset"])
        overlay = graph
        if self.show_labels:
            labels = hv.Labels((xs + 0.04, ys, [n.split(":", 1)[-1] for n in ids]), ["x", "y"], "text").opts(
                text_align="left", text_font_size="9pt", text_color="#111827", xoffset=0)
            overlay = graph * labels
        # Graph plots expose no node selection to streams: a tap gives (x, y), mapped to the nearest node.
        self._tap = hv.streams.Tap(source=graph, x=None, y=None)
        self._tap.add_subscriber(self._on_tap)
        self._ids, self._xy = ids, np.column_stack([xs, ys])
        return overlay.opts(hv.opts.Overlay(xlim=(-0.15, max(xs) + 0.9)))

    @guarded("opening the feature")
    def _on_tap(self, x: float | None = None, y: float | None = None) -> None:
        if x is None or y is None:
            return
        scale = np.array([1.0, 6.0])  # rows are much closer together than columns
        dist = np.hypot(*((self._xy - np.array([x, y])) * scale).T)
        i = int(np.argmin(dist))
        node = self._ids[i]
        if dist[i] < 0.25 and node.startswith("feature:"):
            self.state.feature = node.removeprefix("feature:")

    def _build(self) -> pn.viewable.Viewable:
        if self.lineage is None:
            return pn.Column(self.error, pn.pane.HTML("<div class='wb-muted'>This case has no lineage.json: the upstream graph "
                                                      "is not available. Add lineage.json to the case to see it.</div>",
                                                      stylesheets=[CSS]))
        counts = {s: sum(v == s for v in self.status_of.values()) for s in ("implicated", "broken", "affected")}
        swatch = "".join(f"<span style='display:inline-block;width:10px;height:10px;border-radius:50%;background:{STATUS_COLORS[s]};"
                         f"margin:0 4px 0 12px'></span>{escape(s)} ({counts.get(s, 0)})"
                         for s in ("implicated", "broken", "affected"))
        swatch += "".join(f"<span style='display:inline-block;width:10px;height:10px;border-radius:50%;background:{STATUS_COLORS[k]};"
                          f"margin:0 4px 0 12px'></span>{k}" for k in ("table", "pipeline", "feature"))
        self.legend.object = (f"<div class='wb-muted'>{len(self.lineage.kinds)} nodes, {len(self.lineage.edges)} edges. "
                              f"Click a feature to open it in the Features tab.</div><div style='font-size:12px'>{swatch}</div>")
        return pn.Column(self.error, self.legend, self.pane, sizing_mode="stretch_width")

    def code(self) -> str:
        root = str(self.results.case.root)
        return "\n".join(["from workbench import open_case", f"case = open_case({root!r})", "lineage = case.lineage",
                          "print(lineage.to_dict())"] +
                         [f"sorted(lineage.features_of({n!r}))" for n, s in getattr(self, "status_of", {}).items() if s == "implicated"])
