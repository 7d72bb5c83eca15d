"""The fused passes (:mod:`workbench.data.scan`) on a ``dask.distributed`` cluster: one task per part of the log.

A *part* is one parquet file of a partitioned serving log (local or an fsspec URL the
workers can read), or a range of row groups of one large file. Each task reads its
part with polars, turns it into the case's canonical rows (:class:`Reader`: the
loader's column mapping, casts and served-snapshot rule, fixed on the client), and
returns the small partial (the tasks are in :mod:`workbench.data.scan`) of :func:`workbench.data.scan.log_partial` or
:func:`~workbench.data.scan.window_partial`; the client merges them
(:func:`~workbench.data.scan.merge_log`, :func:`~workbench.data.scan.merge_windows`),
so the results equal the in-process ones (counts exactly, sums up to float addition
order, the hash sample by construction). Pass 2 maps only over the parts whose
timestamps (parquet footer statistics) reach a window.

Dask is an optional extra: ``pip install 'ml-workbench[dask]'``. Every worker must run
the same polars version as the client (the row hash that draws the sample is
polars'), and must be able to read the parts' paths.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from workbench.case.columns import SNAPSHOT
from workbench.case.loader import SCORED, Case
from workbench.errors import WorkbenchError

__all__ = ["INSTALL", "Part", "Reader", "client", "map_parts", "parts", "reader"]

INSTALL = "pip install 'ml-workbench[dask]'"
PART_ROWS = 4_000_000  # a file larger than this is split into row-group ranges of about this many rows


@dataclass(frozen=True, slots=True)
class Part:
    """One task's share of the log: ``row_groups`` of the parquet file ``uri`` (``offset``/``rows``: where they sit),
    the hive partition values of its path, and the span of its raw timestamps when the footer says (else None)."""

    uri: str
    row_groups: tuple[int, ...]
    offset: int
    rows: int
    hive: tuple[tuple[str, str], ...] = ()
    start: datetime | None = None
    end: datetime | None = None  # inclusive: the largest timestamp

    @property
    def remote(self) -> bool:
        return "://" in self.uri and not self.uri.startswith("file://")

    def reaches(self, start: datetime, end: datetime) -> bool:
        """Whether any of its rows may fall in ``[start, end)`` (True when the footer has no statistics)."""
        return self.start is None or self.end is None or (self.start < end and self.end >= start)


@dataclass(frozen=True, slots=True)
class Reader:
    """How a worker turns a part into the case's canonical rows: the loader's select (``exprs``), the whole source's
    column types (a hive value is typed by them, and a column a part lacks, written before the log gained it, is null
    of its type, as the loader reads it) and the served-snapshot fill, all fixed on the client."""

    exprs: tuple[pl.Expr, ...]
    types: Mapping[str, pl.DataType]
    lacking: frozenset[str]  # columns some parts lack (the source's ``lacking``): only then is a part's schema read
    scored_only: bool  # the log has rows without a finite prediction: the loader leaves them out, so do the workers
    snapshot: pl.Expr | None

    def frame(self, part: Part) -> pl.LazyFrame:
        if part.remote:
            import fsspec
            import pyarrow.parquet as pq

            with fsspec.open(part.uri, "rb") as f:
                table = pq.ParquetFile(f).read_row_groups(list(part.row_groups))
            lf = pl.from_arrow(table).lazy()  # type: ignore[union-attr]  # a Table gives a DataFrame
        else:
            path = part.uri.removeprefix("file://")
            lf = pl.scan_parquet(path).slice(part.offset, part.rows)  # the slice reaches the scan: only these row groups
        hive = [_hive_value(v, self.types[k]).alias(k) for k, v in part.hive if k in self.types]
        have = set(lf.collect_schema().names()) if self.lacking else set()
        absent = [pl.lit(None, dtype=self.types[c]).alias(c) for c in sorted(self.lacking - have)]
        out = (lf.with_columns(hive + absent) if hive or absent else lf).select(self.exprs)
        out = out.filter(SCORED) if self.scored_only else out
        return out.with_columns(pl.coalesce(pl.col(SNAPSHOT), self.snapshot).alias(SNAPSHOT)) if self.snapshot is not None else out


def _hive_value(text: str, dtype: pl.DataType) -> pl.Expr:
    """A hive partition value (``date=2026-11-20``) typed as polars reads it from the whole directory."""
    value = pl.lit(text)
    if dtype == pl.Date:
        return value.str.to_date()
    if isinstance(dtype, pl.Datetime):
        return value.str.to_datetime(time_unit=dtype.time_unit, time_zone=dtype.time_zone)
    return value if dtype == pl.String else value.cast(dtype)


def _source(case: Case) -> Any:
    from workbench.case.sources import resolve

    return resolve(case.root, "predictions", case.config.sources.get("predictions"), required=True)


def _unsupported(case: Case, what: str) -> WorkbenchError:
    return WorkbenchError(case.sources.get("predictions", case.root), f"the Dask backend reads parquet files; this log is {what}.",
                          "run without --scheduler (in process), or export the log as parquet parts (a directory or s3://, "
                          "gs://, az:// prefix) the workers can read.")


def reader(case: Case) -> Reader:
    """The canonical select of the case's serving log, as :func:`workbench.case.loader.open_case` builds it.

    Reuses the loader's own select (a feature's NaN read as missing), timestamp rule and served-snapshot rule;
    ``tests/data/test_scan.py`` checks that a reader over every part gives exactly ``case.predictions``.
    """
    from workbench.case.loader import _canonical_exprs, _served_snapshot, _time_expr

    source = _source(case)
    raw = source.scan()
    schema = raw.collect_schema()
    ts, _ = _time_expr(source, schema, case.columns.timestamp, raw)
    return Reader(exprs=tuple(_canonical_exprs(ts, schema, case.columns)), types=dict(schema.items()),
                  lacking=frozenset(source.lacking), scored_only=case.unscored is not None,
                  snapshot=_served_snapshot(case.snapshots) if case.snapshots else None)


def _utc(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _hive(relative: str) -> tuple[tuple[str, str], ...]:
    return tuple(tuple(seg.split("=", 1)) for seg in relative.split("/")[:-1] if "=" in seg)  # type: ignore[misc]


def _file_parts(uri: str, relative: str, meta: Any, ts_column: str) -> list[Part]:
    """The parts of one parquet file: its row groups in runs of about ``PART_ROWS`` rows."""
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    j = names.index(ts_column) if ts_column in names else None
    out: list[Part] = []
    run: list[int] = []
    offset = rows = 0
    lo: datetime | None = None
    hi: datetime | None = None
    known = j is not None

    def close() -> None:
        if run:
            out.append(Part(uri, tuple(run), offset, rows, _hive(relative), lo if known else None, hi if known else None))

    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        if rows and rows + rg.num_rows > PART_ROWS:
            close()
            offset, rows, run, lo, hi, known = offset + rows, 0, [], None, None, j is not None
        run.append(g)
        rows += rg.num_rows
        stats = rg.column(j).statistics if j is not None else None
        a, b = (_utc(stats.min), _utc(stats.max)) if stats is not None and stats.has_min_max else (None, None)
        if a is None or b is None:
            known = False
        else:
            lo, hi = (a if lo is None else min(lo, a)), (b if hi is None else max(hi, b))
    close()
    return out


def parts(case: Case) -> list[Part]:
    """The parts of the case's serving log: each parquet file, large files split by row groups."""
    import pyarrow.parquet as pq

    from workbench.case.sources import LocalFiles, ObjectStore

    source = _source(case)
    ts = case.columns.timestamp
    out: list[Part] = []
    if isinstance(source, LocalFiles):
        path = source.path
        assert path is not None
        if path.suffix == ".csv":
            raise _unsupported(case, "a CSV file")
        for f in source.parts():
            relative = str(f.relative_to(path)) if path.is_dir() else f.name
            out += _file_parts(str(f), relative, pq.ParquetFile(f).metadata, ts)
    elif isinstance(source, ObjectStore):
        if source.key.endswith(".csv"):
            raise _unsupported(case, "a CSV object")
        dataset = source.dataset()
        for frag in dataset.get_fragments():
            relative = frag.path[len(source.key) + 1:] if frag.path.startswith(source.key + "/") else Path(frag.path).name
            out += _file_parts(f"{source.protocol}://{frag.path}", relative, frag.metadata, ts)
    else:
        raise _unsupported(case, f"a {type(source).__name__} source")
    return [p for p in out if p.rows]


# ---------------------------------------------------------------- the cluster
@functools.lru_cache(maxsize=8)
def _connect(address: str) -> Any:
    import socket
    from urllib.parse import urlsplit

    from distributed import Client

    try:
        where = urlsplit(address)
        if where.scheme == "tcp" and where.hostname and where.port:  # fail at once on a closed port, not after the timeout
            socket.create_connection((where.hostname, where.port), timeout=5).close()
        return Client(address, timeout="20s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise WorkbenchError(address, f"cannot reach a Dask scheduler: {str(exc).splitlines()[0][:200]}",
                             f"start one (`dask scheduler`, then `dask worker {address}` on each machine) or fix --scheduler.") from None


def client(scheduler: object) -> Any:
    """A ``distributed.Client`` for ``scheduler``: a client as given, or one connection per address (``tcp://HOST:PORT``)
    kept for the process, so an investigation does not reconnect for every pass."""
    try:
        from distributed import Client
    except ImportError:
        raise WorkbenchError("--scheduler", "the Dask backend needs the dask and distributed packages.",
                             f"install them: {INSTALL}") from None
    if isinstance(scheduler, Client):
        return scheduler
    if not isinstance(scheduler, str) or "://" not in scheduler:
        raise WorkbenchError("--scheduler", f"{scheduler!r} is not a scheduler address.",
                             "give the address the scheduler printed, e.g. tcp://10.0.0.5:8786, or a distributed.Client.")
    return _connect(scheduler)


def map_parts(scheduler: object, task: Any, items: list[Part], **kw: Any) -> list[Any]:
    """Run ``task(part, **kw)`` for every part on the cluster; the shared arguments travel once per worker."""
    c = client(scheduler)
    # sent once per worker, not once per task; each value wrapped in a list, since scatter splits a list or a dict
    shared = {k: c.scatter([v], broadcast=True)[0] for k, v in kw.items()}
    futures = c.map(task, items, pure=False, **shared)
    return list(c.gather(futures))
