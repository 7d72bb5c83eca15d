"""Time windows: the baseline and incident periods every comparison is made between."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl

__all__ = ["Window", "as_utc", "iso"]


def as_utc(value: datetime | str) -> datetime:
    """``value`` (a datetime or an ISO string, ``Z`` allowed) as an aware UTC datetime; a naive one is taken as UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open UTC interval ``[start, end)``."""

    start: datetime
    end: datetime

    if TYPE_CHECKING:  # what the generated __init__ accepts: __post_init__ parses ISO strings and makes both UTC
        def __init__(self, start: datetime | str, end: datetime | str) -> None: ...

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", as_utc(self.start))
        object.__setattr__(self, "end", as_utc(self.end))
        if self.end <= self.start:
            raise ValueError(f"window end {self.end:%Y-%m-%d %H:%M} is not after its start {self.start:%Y-%m-%d %H:%M}")

    @classmethod
    def hours(cls, start: datetime | str, hours: float) -> Window:
        start = as_utc(start)
        return cls(start, start + timedelta(hours=hours))

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def overlaps(self, other: Window) -> bool:
        """Whether the two half-open windows share any moment (windows that only touch do not)."""
        return self.start < other.end and other.start < self.end

    def contains(self, column: str = "ts") -> pl.Expr:
        """A polars predicate selecting the rows inside the window."""
        return pl.col(column).is_between(pl.lit(self.start), pl.lit(self.end), closed="left")

    def to_dict(self) -> dict:
        return {"start": iso(self.start), "end": iso(self.end)}

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M}–{self.end:%Y-%m-%d %H:%M} UTC"


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, as the JSON contract writes times."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")
