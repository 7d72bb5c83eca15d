"""Small helpers every result's text and JSON forms share: JSON-safe values, records, short numbers."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import cast

import polars as pl

from workbench.windows import Window, iso

__all__ = ["fmt", "jsonable", "records"]


def jsonable(value: object) -> object:
    """A JSON-safe copy of ``value``: ISO times, None for NaN/inf, lists for tuples."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Window):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return jsonable(value.item())
    return value


def records(frame: pl.DataFrame) -> list[dict]:
    """The rows of a small result table as JSON-safe dicts."""
    return [cast(dict, jsonable(row)) for row in frame.iter_rows(named=True)]  # jsonable keeps a dict a dict


def moved(before: float | None, after: float | None) -> str:
    """"rose" or "fell": the word for a metric's move between two values (the CLI's and the report's headline)."""
    return "rose" if (after or 0) > (before or 0) else "fell"


def fmt(value: float | None, digits: int = 3) -> str:
    """A short number for the CLI text forms; an en dash for missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"
