"""The lab view, headless: built from result objects, asserted on the holoviews objects it draws."""

from __future__ import annotations

import holoviews as hv
import panel as pn
import pytest

from tests.lab.test_comparison import PHASES, synthetic_table
from workbench.lab import Variant, assess
from workbench.lab.bisection import BisectResult, BisectStep
from workbench.lab.runner import TTFB
from workbench.lab.settings import LabSettings
from workbench_widgets.lab_view import LabView, lab_view

SETTINGS = LabSettings(runs=10, confirm=10, stop_at_first_batch=True)


def revision(sha: str) -> Variant:
    return Variant(sha[:7], ("python", "train.py"), cwd=f"/tmp/wt/{sha}", revision=sha, repo="/src/repo")


@pytest.fixture(scope="module")
def regression():
    table = synthetic_table({"data_ready": 0.03}, {"data_ready": 0.03}, confirm=10)
    return assess(table, SETTINGS, variants={"A": revision("a" * 40), "B": revision("c" * 40)})


@pytest.fixture(scope="module")
def trail(regression):
    fine = assess(synthetic_table(seed=4), SETTINGS, variants={"A": revision("a" * 40), "B": revision("b" * 40)})
    changes = (("b" * 40, "docs: readme"), ("c" * 40, "data: wait for the manifest"), ("d" * 40, "train: log"))
    steps = (BisectStep(2, "d" * 40, "train: log", regression), BisectStep(0, "b" * 40, "docs: readme", fine),
             BisectStep(1, "c" * 40, "data: wait for the manifest", regression))
    return BisectResult("a" * 40, changes, steps, 1, SETTINGS)


def test_comparison_view_draws_a_and_b_per_phase(regression):
    view = lab_view(regression)
    layout = view.distributions()
    assert isinstance(layout, hv.Layout)
    assert [o.label for o in layout] == [*PHASES, TTFB]
    data = next(o for o in layout if o.label == "data_ready")
    box = data.get(0)
    assert isinstance(box, hv.BoxWhisker) and isinstance(data.get(1), hv.Scatter)
    assert sorted(set(box.dimension_values("variant"))) == ["A", "B"]
    assert len(box.dimension_values("seconds")) == 40  # 10 + 10 runs for each of A and B
    assert box.opts.get().kwargs["title"].startswith("data_ready: +") and box.opts.get().kwargs["title"].endswith("*")
    assert "REGRESSION" in view.verdict() and "| confirm |" in view.verdict()
    assert view.trail() is None
    assert "compare_revisions(\n    '/src/repo',\n    'aaaa" in view.code()


def test_bisect_view_shows_the_trail_and_the_culprit_probe(trail):
    view = lab_view(trail)
    table = view.trail()
    assert isinstance(table, hv.Table)
    assert list(table.dimension_values("verdict")) == ["regression", "no change", "regression"]
    assert list(table.dimension_values("moved phase")) == ["data_ready", "-", "data_ready"]
    assert view.comparison is trail.steps[2].comparison  # the culprit's probe by default
    assert "FIRST REGRESSING CHANGE" in view.verdict()
    assert view.code().startswith("from workbench.lab import bisect")
    view.step = 1
    assert view.comparison.verdict == "no change"
    panel = view.__panel__()
    assert isinstance(panel, pn.Column)
    assert any(isinstance(p, pn.pane.HoloViews) and isinstance(p.object, hv.Table) for p in panel)
    choose = next(p for p in panel if isinstance(p, pn.widgets.Select))
    choose.value = 2
    assert view.step == 2 and view.comparison.verdict == "regression"


def test_phase_subset_and_errors_are_visible(regression, trail):
    view = lab_view(regression, phases=["data_ready", TTFB], columns=2)
    assert [o.label for o in view.distributions()] == ["data_ready", TTFB]
    bad = lab_view(trail)
    bad.__panel__()
    bad.step = 7  # out of range: the error shows on the widget instead of raising in a callback
    assert bad.error.visible and "the bisect made 3 comparisons" in bad.error.object


def test_unknown_argument_gets_a_spelling_hint(regression):
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'phase'.\nAvailable: .*\nHint: did you mean 'phases'\?"):
        LabView(regression, phase=["data_ready"])
