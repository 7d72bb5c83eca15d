"""Helpers shared by the analysis modules: JSON-safe records, column checks, normal tails, hash samples."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date, datetime

import polars as pl

from workbench.case import TS, Case
from workbench.errors import WorkbenchError, suggest
from workbench.windows import Window, iso

__all__ = ["check_columns", "fmt", "hash_sample", "jsonable", "norm_sf", "records", "window_rows"]


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
    return [jsonable(row) for row in frame.iter_rows(named=True)]  # type: ignore[misc]


def fmt(value: float | None, digits: int = 3) -> str:
    """A short number for the CLI text forms; an en dash for missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def norm_sf(z: float) -> float:
    """Upper tail of the standard normal, ``P(Z > z)``."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def check_columns(case: Case, names: Iterable[str], role: str, allowed: Sequence[str]) -> tuple[str, ...]:
    """Return ``names`` as a tuple, raising a hinted error for any not in ``allowed``."""
    names = tuple(names)
    for name in names:
        if name not in allowed:
            close = suggest(name, allowed)
            raise WorkbenchError(
                case.sources.get("predictions", case.root), f"'{name}' is not a {role} column of this case.",
                f"did you mean '{close}'?" if close else f"{role} columns are {list(allowed)}; map more in workbench.toml [columns].",
                [f"available: {list(allowed)}"])
    return names


def window_rows(case: Case, window: Window) -> int:
    """Rows served in ``window``, from the case's hourly profile (no data pass)."""
    h = case.hourly
    return int(h.filter(pl.col("hour").is_between(pl.lit(window.start), pl.lit(window.end), closed="left"))["rows"].sum())


def hash_sample(expected_rows: int, target: int, seed: int = 17) -> pl.Expr | None:
    """A row predicate keeping about ``target`` of ``expected_rows`` rows, deterministically.

    The choice hashes the timestamp, so it is the same row by row whatever the
    partitioning: samples of parts merge into the sample of the whole.
    """
    if expected_rows <= target:
        return None
    keep = max(1, round(1_000_000 * target / expected_rows))
    return pl.col(TS).hash(seed) % 1_000_000 < keep
