"""workbench_widgets.slices_view: the figures beside a found slice, as a person reads them."""

from __future__ import annotations

from workbench_widgets.slices_view import found_line


def test_a_found_slice_without_clicks_shows_a_dash_not_nan():
    """A calibration ratio over a window without clicks is undefined (NaN in the slice table); the panel writes an
    en dash where it printed "nan", and keeps every defined figure."""
    row = {"significant": True, "baseline_value": 1.042, "incident_value": float("nan"), "rest_delta": None,
           "share": 0.12, "explained_share": 0.8, "z": 4.26}
    text = found_line(row)
    assert "nan" not in text.lower() and "1.042 → – (rest –)" in text
    assert "share 12%" in text and "explains 80%" in text and "z 4.3" in text
