"""The slice check names the feature that broke inside the segment holding the regression (a proving-ground dev case)."""

from __future__ import annotations

from tests.conftest import dev_case
from workbench import diagnose, open_case
from workbench.rca.checks.slices import slice_check
from workbench.rca.context import Context


def test_a_feature_broken_in_one_segment_is_named_with_that_segment(tmp_path):
    # a stale feature on platform=web only (dev seed 12, 150k rows): the segment holds the regression
    path, truth = dev_case(tmp_path, "feature", "slice_confined", 12, max_rows=150_000)
    ctx = Context(open_case(path))
    ev = slice_check(ctx)
    by_kind = {c.kind: c for c in ev.candidates}
    assert by_kind["slice"].target == truth["slice"] and by_kind["slice"].fallback
    feature = by_kind["feature"]
    assert (feature.target, feature.slice) == (truth["target"], truth["slice"])
    assert feature.explains == (("slice", truth["slice"]),) and feature.strength > 0.5
    top = diagnose(path).root_causes[0]
    assert (top.kind, top.target, top.slice) == ("feature", truth["target"], truth["slice"])
    assert "slice" in {check for check, _ in top.evidence}


def test_a_segment_whose_own_traffic_collapsed_names_no_feature(tmp_path):
    # slice/collapse: the segment's clicks collapsed, no feature broke there (dev seed 5, country=IN)
    path, truth = dev_case(tmp_path, "slice", "collapse", 5, max_rows=150_000)
    ev = slice_check(Context(open_case(path)))
    assert [c.target for c in ev.candidates if c.kind == "slice"] == [truth["target"]]
    assert not [c for c in ev.candidates if c.kind == "feature"]
