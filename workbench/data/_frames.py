"""How the passes read the serving log: column checks, window row ranges, tagged windows, hash samples."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import polars as pl

from workbench.case.columns import TS
from workbench.case.loader import Case
from workbench.errors import WorkbenchError, suggest
from workbench.windows import Window

if TYPE_CHECKING:
    from workbench.data._dask import Part, Reader

__all__ = ["PERIOD", "check_columns", "collect_sums", "collect_windows", "hash_sample", "unsigned_to_int64", "window_frames", "window_rows"]


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


def _aligned(window: Window) -> bool:
    return all(t.minute == 0 and t.second == 0 and t.microsecond == 0 for t in (window.start, window.end))


def window_frames(case: Case, windows: list[Window], *, sliced: bool = True) -> tuple[list[pl.LazyFrame], bool]:
    """The rows of each window as a LazyFrame, reading only that stretch of the log when it is time-ordered.

    A time filter cannot reach the parquet scan through the loader's timestamp
    conversion, so a plain ``filter`` decodes every row. When the log is in time
    order (the loader warns otherwise) and the windows are whole hours, the
    hourly profile gives each window's row range, and a ``slice`` (which does
    reach the scan) reads only it; the time filter is still applied. Callers check
    the row count against :func:`window_rows` and fall back to ``sliced=False``
    on a mismatch, so a log out of order costs time, never correctness. Returns
    the frames and whether they are sliced.

    A log that lives in a database, object storage or a lakehouse table reads each
    window itself (``case.window_scan``: a ``WHERE`` on the timestamp with only the
    needed columns, or pruned files and row groups; see :mod:`workbench.case.sources`).
    Those frames count as sliced too, so the same row-count check guards them.
    """
    if sliced and case.window_scan is not None:
        return [case.window_scan(w.start, w.end).filter(w.contains(TS)) for w in windows], True
    lf = case.predictions
    ordered = sliced and not any("not sorted by time" in w for w in case.warnings)
    if not ordered or not all(_aligned(w) for w in windows):
        return [lf.filter(w.contains(TS)) for w in windows], False
    h = case.hourly.sort("hour")
    out = []
    for w in windows:
        before = int(h.filter(pl.col("hour") < w.start)["rows"].sum())
        inside = window_rows(case, w)
        out.append(lf.slice(before, inside).filter(w.contains(TS)))
    return out, True


PERIOD = "_period"


def collect_windows(case: Case, windows: dict[str, Window], build: Callable[[pl.LazyFrame], pl.LazyFrame]) -> pl.DataFrame:
    """Collect ``build(rows)``, where ``rows`` holds every window's rows tagged in column ``PERIOD`` by name.

    ``build`` must keep ``PERIOD`` and a ``rows`` count (e.g. a ``group_by(PERIOD, ...)``
    with ``pl.len()``), which is checked against the hourly profile: see
    :func:`window_frames`. Windows must not overlap.
    """
    for sliced in (True, False):
        frames, is_sliced = window_frames(case, list(windows.values()), sliced=sliced)
        tagged = pl.concat([fr.with_columns(pl.lit(name).alias(PERIOD)) for name, fr in zip(windows, frames, strict=True)])
        out = build(tagged).collect(engine="streaming")
        if not is_sliced:
            return out
        got = dict(out.group_by(PERIOD).agg(pl.col("rows").sum()).iter_rows())
        if all(got.get(name, 0) == window_rows(case, w) for name, w in windows.items()):
            return out
    raise AssertionError("unreachable")  # pragma: no cover


def collect_sums(case: Case, build: Callable[[pl.LazyFrame], pl.LazyFrame], keys: Sequence[str], *,
                 windows: dict[str, Window] | None = None, scheduler: object = None) -> pl.DataFrame:
    """Collect ``build(rows)`` over the whole log, or over ``windows`` as :func:`collect_windows` does, in process or,
    with ``scheduler`` (see :func:`workbench.data._dask.client`), one task per part of the log on a Dask cluster.

    ``build`` must be a ``group_by(keys)`` whose every other column is a count or a sum, so
    the parts' results merge by adding (exactly for counts, up to float addition order for
    sums); a mean is carried as its sum and count. On a cluster only the parts whose
    footer timestamps reach a window are read, and ``build`` travels to the workers
    (cloudpickle), so it must not close over anything that cannot be pickled.
    """
    if scheduler is None:
        return build(case.predictions).collect(engine="streaming") if windows is None else collect_windows(case, windows, build)
    from workbench.data._dask import map_parts, parts, reader

    ps = parts(case)
    if windows is not None:
        ps = [p for p in ps if any(p.reaches(w.start, w.end) for w in windows.values())]
    if not ps:
        empty = pl.LazyFrame(schema=case.predictions.collect_schema())
        return build(_tagged(empty, windows)).collect()
    pieces = map_parts(scheduler, _sums_task, ps, read=reader(case), build=build, windows=tuple((windows or {}).items()))
    return pl.concat([unsigned_to_int64(p) for p in pieces], how="vertical_relaxed").group_by(list(keys)).agg(pl.exclude(list(keys)).sum())


def unsigned_to_int64(frame: pl.DataFrame) -> pl.DataFrame:
    """polars counts come out as UInt32; as Int64 they add over any number of parts without overflow."""
    return frame.with_columns(pl.col(pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64).cast(pl.Int64))


def _tagged(lf: pl.LazyFrame, windows: dict[str, Window] | None) -> pl.LazyFrame:
    """Every window's rows of ``lf`` tagged in ``PERIOD`` by name (``lf`` itself without windows)."""
    if not windows:
        return lf
    return pl.concat([lf.filter(w.contains(TS)).with_columns(pl.lit(name).alias(PERIOD)) for name, w in windows.items()])


def _sums_task(part: Part, read: Reader, build: Callable[[pl.LazyFrame], pl.LazyFrame],
               windows: tuple[tuple[str, Window], ...]) -> pl.DataFrame:
    """One part's share of :func:`collect_sums` (run on a worker)."""
    return build(_tagged(read.frame(part), dict(windows))).collect(engine="streaming")
