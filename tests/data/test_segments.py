"""workbench.data.segments: a segment's own grain counts the positives the model expects, so a collapse keeps it testable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from workbench.data.segments import _segment_grain


def _segment(positives_after: int) -> pl.DataFrame:
    """60 six-hour periods of a segment with 12 clicks expected per period; from period 45 only ``positives_after``."""
    start = datetime(2027, 2, 9, tzinfo=UTC)
    return pl.DataFrame({"window": [start + timedelta(hours=6 * k) for k in range(60)], "rows": [1_000] * 60,
                         "labeled": [950] * 60, "positives": [12] * 45 + [positives_after] * 15,
                         "pred_sum_labeled": [12.0] * 60})


def test_a_segment_whose_clicks_collapsed_keeps_the_grain_its_expected_clicks_allow():
    assert _segment_grain(_segment(12), "6h") == "6h"
    # a quarter of the periods with one click left: by observed clicks only 75% of the periods would be testable at
    # 6 h (the grain needs 80%) and the day would be the finest; by expected clicks the collapse stays at 6 h
    assert _segment_grain(_segment(1), "6h") == "6h"
    # and a segment the model expects few clicks in gets a coarser grain, whatever was observed
    thin = _segment(12).with_columns(pl.lit(3.0).alias("pred_sum_labeled"), pl.lit(3).alias("positives"))
    assert _segment_grain(thin, "6h") == "1d"
