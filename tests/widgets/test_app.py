"""investigate() headless: build the app on a small case with a known diagnosis, act, assert on state and drawings.

Every test acts through the shared ``Investigation`` (as a click would) and checks
both the state and what is drawn: the HoloViews objects, or the Bokeh sources the
views update in place.
"""

from __future__ import annotations

import math
from datetime import timedelta

import holoviews as hv
import numpy as np
import panel as pn
import pytest
from bokeh.document import Document

from tests.widgets.test_helpers import make_diagnosis
from workbench import open_case
from workbench_widgets import Investigation, Investigator, investigate
from workbench_widgets.lineage_view import layered_layout
from workbench_widgets.tree_panel import hypothesis_key


@pytest.fixture(scope="module")
def app(small_case_template) -> Investigator:
    case = open_case(small_case_template)
    inv = investigate(case, diagnosis=make_diagnosis(case))
    inv.__panel__().get_root(Document())  # render: updates below go through real Bokeh models
    return inv


@pytest.fixture(autouse=True)
def _reset(app):
    yield
    d = app.results.diagnosis()
    app.state.param.update(slice=None, node=None, path=[], choices={}, notes={}, view="tree",
                           baseline=(d.baseline.start, d.baseline.end), incident=(d.incident.start, d.incident.end))
    for view in app.views.values():
        view.clear_error()


def _no_errors(app):
    shown = {name: v.error.object for name, v in app.views.items() if v.error.visible}
    assert not shown, shown


# ---------------------------------------------------------------- the app
def test_builds_every_view_without_errors(app):
    assert list(app.views) == ["tree", "timeline", "slices", "features", "snapshots", "lineage"]
    assert app.tabs._names == ["Decision tree", "Quality timeline", "Slices", "Features", "Snapshots", "Lineage"]
    _no_errors(app)
    d = app.results.diagnosis()
    assert app.state.windows == (d.baseline, d.incident)  # the detected windows until the user selects others


def test_tabs_follow_the_state_and_back(app):
    app.state.view = "lineage"
    assert app.tabs.active == 5
    app.tabs.active = 2
    assert app.state.view == "slices"


def test_interactions_never_rescan(app):
    before = list(app.results.calls)
    app.state.slice = "country=BR"
    app.state.open("lineage")
    app.state.parameter = app.views["snapshots"].params_all[-1]
    app.state.feature = "f_b"
    app.views["slices"].metric = "calibration_ratio"
    assert app.results.calls[len(before):] == [] or all(k[0] == "feature_by_slice" for k in app.results.calls[len(before):])


def test_unknown_keyword_gets_a_spelling_hint(small_case_template):
    case = open_case(small_case_template)
    with pytest.raises(TypeError, match="Hint: did you mean 'prefetch'"):
        investigate(case, diagnosis=make_diagnosis(case), prefech=False)


def test_views_refuse_unknown_keywords_with_a_hint(app):
    from workbench_widgets import SlicesView, TreePanel

    with pytest.raises(TypeError, match="Hint: did you mean 'max_causes'"):
        TreePanel(app.state, app.results, max_cause=2)
    with pytest.raises(TypeError, match="Available: \\['cols', 'metric', 'rows'\\]"):
        SlicesView(app.state, app.results, colour="red")


def test_code_reproduces_with_workbench_calls(app):
    app.state.slice = "country=BR"
    code = app.code()
    assert "diagnose(case)" in code and "find_slices(case, baseline, incident)" in code
    assert "quality_series(case, by='country')" in code and "snapshot_timeline(case)" in code
    compile(code, "<code>", "exec")  # it is valid Python


def test_save_and_reopen_from_a_file(app, small_case_template, tmp_path):
    app.state.open("lineage")
    app.state.choose("upstream:table:t", "accepted")
    path = app.save(tmp_path / "state.json")
    case = open_case(small_case_template)
    again = investigate(case, diagnosis=make_diagnosis(case), state=path)
    assert again.state.choices == {"upstream:table:t": "accepted"} and again.state.node == "lineage"
    assert again.views["tree"]._details["lineage"].visible  # it opens where it stood


# ---------------------------------------------------------------- the decision tree
def test_tree_rows_badges_and_recommended_path(app):
    tree = app.views["tree"]
    assert list(tree._buttons) == ["prediction_quality", "label_side", "model_side", "feature_side", "lineage", "slice"]
    onpath = {n for n, b in tree._buttons.items() if "wb-onpath" in b.css_classes}
    assert onpath == {"prediction_quality", "feature_side", "lineage"}  # the top root cause's path
    assert tree._buttons["lineage"].label.startswith("▶")


def test_opening_a_node_shows_its_evidence_and_plots(app):
    tree = app.views["tree"]
    tree._buttons["feature_side"].clicks += 1  # as a click in the browser
    assert app.state.node == "feature_side" and app.state.path == ["feature_side"]
    detail = tree._details["feature_side"]
    assert detail.visible and not tree._details["lineage"].visible
    assert tree._buttons["feature_side"].button_type == "primary"
    plots = [p.object for p in tree._plots[("feature_side", id(app.results.diagnosis().evidence("feature_side")))]]
    assert isinstance(plots[0], hv.Bars) and isinstance(plots[1], hv.Overlay)  # data["plot"] then data["plots"]
    head = detail.objects[0].object
    assert "f_a and f_b lost coverage at the onset" in head and "fail" in head


def test_accepting_a_hypothesis_and_writing_a_note(app):
    tree = app.views["tree"]
    key = hypothesis_key("upstream", "table:t")
    card_switch = tree._choice_cache[("causes", key)]
    card_switch.value = "accept"
    assert app.state.choices == {key: "accepted"}
    app.state.open("lineage")
    node_switch = tree._choice_cache[("lineage", key)]
    assert node_switch.value == "accept"  # every switch for the hypothesis follows the state
    app.state.choose(key, "rejected")
    assert card_switch.value == "reject" and node_switch.value == "reject"
    tree._note_widget("lineage").value = "paged the owners"
    assert app.state.notes == {"lineage": "paged the owners"}


def test_run_check_uses_the_selected_windows(app):
    tree = app.views["tree"]
    d = app.results.diagnosis()
    app.views["timeline"].select(d.incident.start + timedelta(hours=2), d.incident.end)
    ev = tree.run_check("slice")
    assert ev.summary.startswith("slice re-ran on") and str(app.state.windows[1]) in ev.summary
    app.state.open("slice")
    assert "slice re-ran on" in tree._details["slice"].objects[0].object


def test_a_failing_callback_shows_in_the_error_pane(app):
    tree = app.views["tree"]
    original = tree.diagnosis.tree.nodes["slice"]
    broken = type(original)(original.name, original.question, lambda ctx: 1 / 0, read=original.read)
    tree.diagnosis.tree.nodes["slice"] = broken
    try:
        tree._run_guarded("slice")  # the button's callback
    finally:
        tree.diagnosis.tree.nodes["slice"] = original
    assert tree.error.visible and "running the check failed" in tree.error.object and "ZeroDivisionError" in tree.error.object


# ---------------------------------------------------------------- the quality timeline
def test_timeline_draws_the_metrics_onset_and_estimated_hours(app):
    tl = app.views["timeline"]
    assert list(tl.overlays) == ["normalized_entropy", "calibration_ratio", "prediction_mean", "label_rate"]
    ne = tl.overlays["normalized_entropy"]
    labels = [el.label for el in ne]
    assert "all traffic" in labels
    if tl.onset is not None and tl.onset.detected:
        assert "onset" in labels
    if tl.delayed_from is not None:
        assert "labels still arriving" in labels and "estimated (labels delayed)" in labels


def test_selecting_a_range_sets_the_window_every_view_follows(app):
    tl = app.views["timeline"]
    start = app.results.case.start + timedelta(hours=10, minutes=20)
    tl._on_geometry(type("E", (), {"final": True, "geometry": {"x0": start.timestamp() * 1e3,
                                                               "x1": (start + timedelta(hours=3)).timestamp() * 1e3}})())
    assert app.state.incident == (start.replace(minute=0), start.replace(minute=0) + timedelta(hours=4))  # snapped to hours
    box = tl.spans["normalized_entropy"][1]
    assert box.left == start.replace(minute=0).timestamp() * 1e3
    tl.drag_sets = "baseline"
    tl.select(app.results.case.start, app.results.case.start + timedelta(hours=5), "baseline")
    assert app.state.baseline[1] - app.state.baseline[0] == timedelta(hours=5)
    b, i = app.state.windows
    assert app.views["slices"].search.baseline == b and app.views["features"].drift.incident == i  # the other views followed
    tl.reset_windows()
    assert app.state.windows == (app.results.diagnosis().baseline, app.results.diagnosis().incident)
    _no_errors(app)


def test_selecting_a_slice_draws_its_series(app):
    tl = app.views["timeline"]
    assert np.isnan(tl.slice_sources["normalized_entropy"].data["y"]).all()
    app.state.slice = "country=BR"
    ys = tl.slice_sources["normalized_entropy"].data["y"]
    assert np.isfinite(ys).sum() > 20
    assert "country=BR" in tl.caption.object and tl.clear_slice.visible
    tl.clear_slice.clicks += 1
    assert app.state.slice is None and np.isnan(tl.slice_sources["label_rate"].data["y"]).all()


# ---------------------------------------------------------------- slices
def test_slice_explorer_found_slices_bars_and_heatmap(app):
    sv = app.views["slices"]
    assert sv.search is not None and sv.deltas is not None
    assert list(sv._found_buttons) == sv.search.table["slice"].to_list()
    bars = sv.bars_pane.object[()]
    assert isinstance(bars, hv.Bars) and set(bars.dimension_values("value")) == {"US", "BR", "IN"}
    sv.cols = "platform"
    assert sv.heat_pane.visible and not sv.bars_pane.visible
    heat = sv.heat_pane.object[()]
    cells = next(el for el in heat if isinstance(el, hv.HeatMap))
    assert len(cells) == 6  # 3 countries x 2 platforms
    sv.cols = None
    assert sv.bars_pane.visible


def test_clicking_a_bar_or_cell_selects_the_slice(app):
    sv = app.views["slices"]
    sv._on_tap_bars(x="IN")
    assert app.state.slice == "country=IN"
    bars = sv.bars_pane.object[()]
    flags = dict(zip(bars.dimension_values("value"), bars.dimension_values("flag"), strict=True))
    assert flags["IN"] == "selected"
    sv.cols = "platform"
    sv._on_tap_heat(x="ios", y="BR")
    assert app.state.slice == "country=BR & platform=ios"
    assert "country=BR &amp; platform=ios" in sv.facts.object
    sv.cols = None
    with pytest.raises(ValueError, match="Available: \\['country', 'platform'\\]"):
        sv.select("contry=BR")


# ---------------------------------------------------------------- features
def test_feature_view_ranks_and_opens_a_feature(app):
    fv = app.views["features"]
    assert set(fv.table.value["feature"]) == {"f_a", "f_b", "f_c", "country", "platform"}
    app.state.feature = "f_b"
    assert "f_b" in fv.facts.object
    assert "values in effective use" in fv.facts.object and "nan → nan" not in fv.facts.object
    assert "f_b" in fv._time_figures["coverage"].title.text
    cov = fv.time_sources["coverage"].data["y"]
    assert np.nanmin(cov) == pytest.approx(1.0)  # the small case has no nulls
    dist = fv.dist_pane.object[()]
    assert "f_b" in dist.opts.get().kwargs["title"]
    fv._on_click(type("E", (), {"row": 0})())
    assert app.state.feature == fv._ranked["feature"][0]


# ---------------------------------------------------------------- snapshots
def test_snapshot_view_heatmap_histograms_and_parameter_switch(app):
    sv = app.views["snapshots"]
    assert sv.ids == ["s1", "s2"] and sv.stable == "s1"
    heat = next(el for el in sv.heatmap_pane.object if isinstance(el, hv.HeatMap))
    assert set(heat.dimension_values("parameter")) == set(sv.params_all)
    app.state.parameter = "2.weight"
    hist = sv.hist_pane.object[()]
    assert [el.label for el in hist] == ["stable", "selected"] and "2.weight" in hist.opts.get().kwargs["title"]
    assert sv.code().count("s2") >= 2


# ---------------------------------------------------------------- lineage
def test_lineage_layout_and_highlights(app):
    lv = app.views["lineage"]
    pos = layered_layout(app.results.case.lineage)
    assert pos["table:t"][0] == 0 and pos["pipeline:p"][0] == 1 and pos["feature:f_a"][0] == 2
    assert pos["feature:f_c"][0] == 2  # longest path: f_c sits with the other features
    assert lv.status_of["table:t"] == "implicated"
    assert lv.status_of["feature:f_a"] == lv.status_of["feature:f_b"] == "broken"
    assert lv.status_of["feature:f_c"] == "affected" and lv.status_of["pipeline:p"] == "affected"
    lv._on_tap(x=2.0, y=pos["feature:f_b"][1])
    assert app.state.feature == "f_b"


def test_views_without_inputs_say_so(tmp_path, small_case_template):
    import shutil

    root = shutil.copytree(small_case_template, tmp_path / "bare")
    shutil.rmtree(root / "snapshots")
    (root / "lineage.json").unlink()
    (root / "model.py").unlink()
    case = open_case(root)
    inv = investigate(case, diagnosis=make_diagnosis(case))
    assert "no lineage.json" in inv.views["lineage"].__panel__().objects[1].object
    assert "lists no snapshots" in inv.views["snapshots"].__panel__().objects[1].object


def test_state_is_typed_parameters_with_docs():
    for name in ("baseline", "incident", "slice", "choices", "notes", "path"):
        assert Investigation.param[name].doc
    assert isinstance(pn.viewable.Viewer, type)
    assert math.isfinite(1.0)


def test_long_work_runs_in_the_background_with_a_progress_line(app):
    """In a live session a window change reruns the windowed passes off the event loop, behind a status line."""
    import asyncio

    sv, fv = app.views["slices"], app.views["features"]

    async def act():
        for view in (sv, fv):
            view.background = True
        try:
            d = app.results.diagnosis()
            app.state.incident = (d.incident.start + timedelta(hours=1), d.incident.end)
            assert sv.status.visible and "searching slices" in sv.status.object
            assert fv.status.visible and "measuring feature drift" in fv.status.object
            await asyncio.gather(*sv._tasks, *fv._tasks)
        finally:
            for view in (sv, fv):
                view.background = None

    asyncio.run(act())
    assert not sv.status.visible and sv.search.incident == app.state.windows[1]
    assert fv.drift.incident == app.state.windows[1]
    _no_errors(app)


def test_a_log_too_sparse_to_test_is_never_shown_as_healthy(tmp_path):
    """Two rows an hour: no grain holds enough labelled periods, so nothing was tested; the header says so (it said
    "no regression detected") and the decision tree's first row carries the reason."""
    from tests.data.analysis_data import write_case

    case = open_case(write_case(tmp_path / "c", seed=2, hours=96, per_hour=2, onset=60))
    inv = investigate(case)
    inv.__panel__().get_root(Document())
    header = inv._header_html()
    assert "cannot be tested" in header and "no regression" not in header
    root = inv.results.diagnosis().evidence(inv.results.diagnosis().tree.root)
    assert root.verdict == "skip" and "too sparse" in root.summary
    # every tab builds (the decision tree's headline formatted the missing values and raised), and none calls it healthy
    broken = [name for name, content in zip(inv.tabs._names, inv.tabs.objects, strict=True) if isinstance(content, pn.pane.Alert)]
    assert not broken, broken
    _no_errors(inv)
    headline = inv.views["tree"]._causes().objects[0].object
    assert "<b>Prediction quality cannot be tested</b>: too sparse" in headline and "No regression" not in headline
    card = inv.views["tree"]._causes().objects[1].object
    assert "nothing was tested" in card and "wb-card minor" in card  # grey, not the green of a healthy log
    caption = inv.views["timeline"]._caption()
    assert "not tested" in caption and "too sparse" in caption and "no onset detected" not in caption


def test_the_expected_calibration_is_drawn_in_the_ratios_own_units():
    """feature_coverage_drop's headline is the calibration ratio. The detector fits ratios on the log scale and reports
    the expectation back in the ratio's units; the timeline drew exp() of it (a ratio of 1.0 expected at 2.7). The
    dotted line now sits on the curve before the onset."""
    from tests.conftest import sample_case

    case = open_case(sample_case("feature_coverage_drop"))
    inv = investigate(case)
    tl = inv.views["timeline"]
    assert tl.onset is not None and tl.onset.metric == "calibration_ratio" and tl.onset.detected
    curves = {el.label: el for el in tl.overlays["calibration_ratio"]}
    expected = curves["expected"].dimension_values(1)
    drawn = curves["all traffic"].dimension_values(1)
    before = tl.x < np.datetime64(tl.onset.onset.replace(tzinfo=None))
    level = np.nanmedian(drawn[before])
    assert np.nanmedian(expected[before]) == pytest.approx(level, rel=0.1)


def test_a_segments_expectation_is_not_drawn_over_the_whole_traffic(monkeypatch):
    """When the diagnosis read the onset on one segment's series, its expected line belongs to that segment: drawn
    over the whole traffic's curve it would be another series' line."""
    from tests.conftest import sample_case
    from workbench_widgets._results import Results

    tl = investigate(open_case(sample_case("feature_coverage_drop"))).views["timeline"]
    assert tl._expected("calibration_ratio") is not None
    monkeypatch.setattr(Results, "segment", property(lambda self: "country=BR"))
    assert tl._expected("calibration_ratio") is None
