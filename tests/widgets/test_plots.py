"""workbench_widgets._plots: every plot-spec kind drawn as a HoloViews object (user checks get plots too)."""

from __future__ import annotations

import holoviews as hv
import numpy as np

from workbench.rca import plotspec
from workbench_widgets._plots import render_spec, render_specs


def test_timeseries_has_curves_onset_and_shading():
    spec = plotspec.timeseries(["2026-11-20T00:00:00Z", "2026-11-20T01:00:00Z", "2026-11-20T02:00:00Z"],
                               {"NE": [0.8, None, 0.9], "expected": [0.8, 0.8, 0.8]}, title="NE", y="NE",
                               onset="2026-11-20T01:00:00Z", shade=[["2026-11-20T00:00:00Z", "2026-11-20T01:00:00Z", "baseline"]],
                               estimated_from="2026-11-20T02:00:00Z")
    obj = render_spec(spec)
    curves = [el for el in obj if isinstance(el, hv.Curve)]
    assert [c.label for c in curves] == ["NE", "expected"]
    ne = curves[0].dimension_values(1)
    assert np.isnan(ne[1]) and ne[2] == 0.9  # a missing value is a gap, not a zero
    assert [el.label for el in obj if isinstance(el, hv.VLine)] == ["onset"]
    assert [el.label for el in obj if isinstance(el, hv.VSpan)] == ["baseline", "labels delayed (estimated)"]
    assert hv.render(obj) is not None  # Bokeh can draw it


def test_bars_keep_order_and_highlight():
    bars = render_spec(plotspec.bars(["a", "b", "c"], [3.0, 2.0, float("nan")], title="t", highlight=["b"]))
    assert bars.dimension_values("label").tolist() == ["c", "b", "a"]  # drawn top-down after invert_axes
    assert dict(zip(bars.dimension_values("label"), bars.dimension_values("flag"), strict=True))["b"] == "highlighted"


def test_hist_is_normalised_per_series():
    obj = render_spec({"kind": "hist", "edges": [0, 1, 2], "series": {"before": [1, 3], "after": [2, 2]}, "title": "h"})
    hists = [el for el in obj if isinstance(el, hv.Histogram)]
    assert [h.label for h in hists] == ["before", "after"]
    assert hists[0].dimension_values(1).tolist() == [0.25, 0.75]


def test_table_and_unknown_kind():
    table = render_spec(plotspec.table(["node", "covers"], [["table:t", 2], ["p", None]], title="t"))
    assert isinstance(table, hv.Table) and table.dimension_values("node").tolist() == ["table:t", "p"]
    note = render_spec({"kind": "sankey"})
    assert isinstance(note, hv.Div) and "no renderer for plot kind 'sankey'" in note.data
    assert render_spec(None) is None and render_spec({}) is None


def test_render_specs_reads_plot_then_plots():
    data = {"plot": plotspec.bars(["a"], [1.0], title="one"), "plots": [plotspec.bars(["b"], [2.0], title="two")]}
    assert [o.opts.get().kwargs["title"] for o in render_specs(data)] == ["one", "two"]
