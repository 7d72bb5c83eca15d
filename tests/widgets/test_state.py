"""workbench_widgets.state: the investigation's typed state and its JSON round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from workbench_widgets.state import SCHEMA, Investigation


def _full() -> Investigation:
    s = Investigation(case="upstream_break", baseline=(datetime(2026, 11, 19, 13), datetime(2026, 11, 19, 20)),
                      incident=("2026-11-20T13:00:00+00:00", "2026-11-20T20:00:00+00:00"), slice="country=BR & platform=ios",
                      feature="f_ctr_7d", snapshot="s2", parameter="net.0.weight", view="lineage")
    s.open("prediction_quality")
    s.open("feature_side")
    s.choose("upstream:table:ad_clicks", "accepted")
    s.choose("feature:f_ctr_7d", "rejected")
    s.note("lineage", "owners paged at 14:05")
    return s


def test_round_trip_keeps_every_field():
    s = _full()
    back = Investigation.from_json(s.to_json())
    assert back.to_dict() == s.to_dict()
    assert back.baseline == (datetime(2026, 11, 19, 13, tzinfo=UTC), datetime(2026, 11, 19, 20, tzinfo=UTC))
    assert back.path == ["prediction_quality", "feature_side"] and back.node == "feature_side"
    assert json.loads(s.to_json())["schema"] == SCHEMA


def test_windows_are_utc_aware_and_give_workbench_windows():
    s = _full()
    assert all(t.tzinfo is UTC for t in (*s.baseline, *s.incident))
    baseline, incident = s.windows
    assert str(baseline.start) == "2026-11-19 13:00:00+00:00" and incident.duration.total_seconds() == 7 * 3600


def test_verbs_open_choose_note():
    s = Investigation(case="c")
    s.open("a")
    s.open("b")
    s.open("a")  # reopening does not duplicate the path
    assert s.path == ["a", "b"] and s.node == "a"
    s.choose("h", "accepted")
    s.choose("h", None)
    assert s.choices == {}
    s.note("a", "x")
    s.note("a", "   ")  # an empty note removes it
    assert s.notes == {}


def test_bad_choice_names_the_choices():
    with pytest.raises(ValueError, match="Hint: 'accepted' or 'rejected'"):
        Investigation(case="c").choose("h", "maybe")


def test_reversed_window_is_refused_with_a_hint():
    with pytest.raises(ValueError, match="Hint: select the range from left to right"):
        Investigation(case="c", incident=(datetime(2026, 1, 2), datetime(2026, 1, 1)))


def test_unknown_key_gets_a_spelling_hint():
    with pytest.raises(ValueError, match="Hint: did you mean 'slice'"):
        Investigation.from_dict({"case": "c", "slcie": "country=BR"})


def test_other_schema_is_refused():
    with pytest.raises(ValueError, match="Hint: start a fresh investigation"):
        Investigation.from_dict({"schema": "workbench.investigation/99"})


def test_unknown_view_is_refused():
    with pytest.raises(ValueError):
        Investigation(case="c", view="spreadsheet")


def test_summary_line():
    assert _full().summary() == "2 node(s) opened; 1 accepted, 1 rejected; 1 note(s); slice country=BR & platform=ios"
