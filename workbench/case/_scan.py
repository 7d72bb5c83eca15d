"""A table as a polars LazyFrame: the :class:`Source` every reader subclasses, and the IO-plugin machinery they share.

Private to :mod:`workbench.case.sources` (where a table lives) and :mod:`workbench.case._database`
(SQL tables): what a source is called in messages (its URI with secrets masked), how Arrow
batches become DataFrames of one schema with UTC timestamps, and which predicates polars
pushes into a plugin scan can be said at the source.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from workbench.errors import CaseError

__all__ = ["CREDENTIALS", "DATABASES", "INSTALL", "OBJECT_STORES", "UTC_US", "Source", "SourceSpec", "mask"]


DATABASES = {"postgresql": "postgresql", "postgres": "postgresql", "sqlite": "sqlite", "duckdb": "duckdb"}
OBJECT_STORES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs", "abfss": "adlfs"}
INSTALL = "pip install 'ml-workbench[sources]'"
CREDENTIALS = {
    "postgresql": "supply the password with the PGPASSWORD environment variable or a ~/.pgpass line "
                  "(host:port:database:user:password, file mode 0600)",
    "s3": "supply keys with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE and ~/.aws/credentials)",
    "gs": "supply credentials with GOOGLE_APPLICATION_CREDENTIALS or `gcloud auth application-default login`",
    "az": "supply credentials with AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (or `az login`)",
}
# Query parameters that carry secrets (libpq's password/sslpassword, cloud keys and tokens, SAS signatures); not sslkey,
# which names a file.
_SECRET_PARAM = r"(?:\w*(?:password|passwd|secret|token|credential|access_key|account_key|signature)\w*|pwd|sig|key)"
_USERINFO = re.compile(r"(://[^/@:?#]*):([^@?#\s]*)@")  # a password may hold "/" (AWS secrets do)
_PARAM = re.compile(rf"([?&]{_SECRET_PARAM}=)[^&#]*", re.IGNORECASE)
UTC_US = pl.Datetime("us", "UTC")


# ---------------------------------------------------------------- what workbench.toml says
def mask(uri: str) -> str:
    """``uri`` with any password and secret-looking query value replaced by ``***``: safe to print."""
    return _PARAM.sub(r"\1***", _USERINFO.sub(r"\1:***@", uri))


def _scheme(uri: str) -> str:
    head, sep, _ = uri.partition("://")
    if uri.startswith(("delta+", "iceberg+")):
        return uri.split("+", 1)[0]
    return head.lower() if sep and re.fullmatch(r"[a-zA-Z][a-zA-Z0-9+.-]*", head) else "file"


def _family(scheme: str) -> str:
    """postgresql, sqlite, duckdb, s3, gs, az, delta, iceberg or file."""
    if scheme in DATABASES:
        return DATABASES[scheme]
    if scheme in OBJECT_STORES:
        return {"s3fs": "s3", "gcsfs": "gs", "adlfs": "az"}[OBJECT_STORES[scheme]]
    return scheme


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One ``[source.NAME]`` table: where the table lives and, for a database, which table or query."""

    uri: str
    table: str | None = None
    query: str | None = None

    @property
    def family(self) -> str:
        return _family(_scheme(self.uri))

    @property
    def display(self) -> str:
        """The masked URI, plus the table (or "query") for a database: how messages name the source."""
        if self.table:
            return f"{mask(self.uri)} (table {self.table})"
        return f"{mask(self.uri)} (query)" if self.query else mask(self.uri)


# ---------------------------------------------------------------- the sources
class Source:
    """A table of the case and how to read it; ``str()`` is the masked URI that messages name."""

    path: Path | None = None  # a local file or directory; None for other sources
    # columns some parquet parts lack (read as null there): column -> (the parts lacking it, the number of parts)
    lacking: dict[str, tuple[tuple[str, ...], int]]
    pushes_windows = True  # scan_window narrows the read; local files are read by row range instead (workbench.data._frames)

    def __init__(self, display: str) -> None:
        self.display = display
        self.lacking = {}

    def __str__(self) -> str:
        return self.display

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display!r})"

    @property
    def name(self) -> str:
        """A short name for warnings: the file name for a local table, else the masked URI."""
        return self.path.name if self.path is not None else self.display

    def scan(self) -> pl.LazyFrame:
        raise NotImplementedError

    def scan_window(self, column: str, start: datetime, end: datetime) -> pl.LazyFrame | None:
        """At least the rows whose ``column`` lies in ``[start, end)``, read with the range pushed to the source.

        The caller still applies the exact filter. None when the source cannot narrow
        the read better than polars does on :meth:`scan` (local files: see
        :func:`workbench.data._frames.window_frames`).
        """
        return None

    def null_counts(self, columns: Iterable[str]) -> dict[str, int] | None:
        """Null counts per column without reading the values, or None when only a scan can tell."""
        return None

    def error(self, fact: str, hint: str, details: Iterable[str] = ()) -> CaseError:
        return CaseError(self.display, fact, hint, details)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()
    return mask(text[0][:limit]) if text else type(exc).__name__


def _frames(batches: Iterable[Any], predicate: pl.Expr | None, n_rows: int | None, schema: pl.Schema) -> Iterator[pl.DataFrame]:
    """Arrow batches as DataFrames of ``schema``'s types, the full predicate applied (what was pushed only narrowed the
    read), ``n_rows`` honoured."""
    left = n_rows
    for batch in batches:
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        frame = _normalize(frame)
        odd = {n: schema[n] for n, t in frame.schema.items() if n in schema and t != schema[n]}
        if odd:  # e.g. SQLite, whose types follow the values of each batch
            frame = frame.cast(pl.Schema(odd), strict=False)
        if predicate is not None:
            frame = frame.filter(predicate)
        if left is not None:
            frame = frame.head(left)
            left -= frame.height
        yield frame
        if left is not None and left <= 0:
            return


def _normalize(frame: pl.DataFrame) -> pl.DataFrame:
    """Timestamps as Datetime(us, UTC) (naive means UTC, as the contract says): time filters then pass the loader untouched."""
    fix = [pl.col(n).dt.replace_time_zone("UTC").cast(UTC_US) if t.time_zone is None else pl.col(n).dt.convert_time_zone("UTC").cast(UTC_US)
           for n, t in frame.schema.items() if isinstance(t, pl.Datetime) and t != UTC_US]
    return frame.with_columns(fix) if fix else frame


def _normal_schema(schema: pl.Schema) -> pl.Schema:
    return pl.Schema({n: UTC_US if isinstance(t, pl.Datetime) else t for n, t in schema.items()})


# ---------------------------------------------------------------- predicates polars pushes into a plugin scan
# A polars predicate arrives as an expression; its JSON form gives the tree. Only conjuncts of the form
# column <op> literal, is_between and null checks on temporal, integer and string columns are pushed (float
# comparisons differ on NaN); anything else, or a JSON form a later polars changes, is simply not pushed: the
# reader still applies the full predicate, so pushing only ever narrows what is read.
_OPS = {"Eq": "=", "NotEq": "<>", "Lt": "<", "LtEq": "<=", "Gt": ">", "GtEq": ">="}
_UNITS = {"Nanoseconds": 1_000, "Microseconds": 1, "Milliseconds": 0.001}


def _literal(node: dict[str, Any]) -> object:
    value = node["Literal"]
    kind, inner = next(iter(value.items()))
    kind2, v = next(iter(inner.items()))
    if kind == "Dyn":
        return {"Int": int, "Float": float, "Str": str}[kind2](v)
    if kind2 == "Datetime":
        micros = v[0] / _UNITS[v[1]]
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))
    if kind2 == "Date":
        return date(1970, 1, 1) + timedelta(days=int(v))
    if kind2 in ("String", "Boolean") or kind2.startswith(("Int", "UInt")):
        return v
    raise ValueError(kind2)


def _column(node: dict[str, Any]) -> str:
    if "Alias" in node:
        return _column(node["Alias"][0])
    return str(node["Column"])


Condition = Callable[[str, str, object, pl.DataType], Any]


def _translate(predicate: pl.Expr, schema: pl.Schema, render: Condition) -> list[Any]:
    """The conjuncts of ``predicate`` that ``render`` can express at the source."""
    try:
        tree = json.loads(predicate.meta.serialize(format="json"))
    except Exception:  # an expression polars cannot serialize is simply not pushed
        return []
    out: list[Any] = []

    def pushable(column: str) -> bool:
        t = schema.get(column)
        return t is not None and (t.is_temporal() or t.is_integer() or t == pl.String)

    def visit(node: dict[str, Any]) -> None:
        with contextlib.suppress(KeyError, ValueError, TypeError, StopIteration):
            if "BinaryExpr" in node:
                b = node["BinaryExpr"]
                if b["op"] == "And":
                    visit(b["left"])
                    visit(b["right"])
                    return
                left, right, op = b["left"], b["right"], b["op"]
                if "Literal" in left:  # literal <op> column: flip it
                    left, right, op = right, left, {"Lt": "Gt", "LtEq": "GtEq", "Gt": "Lt", "GtEq": "LtEq"}.get(op, op)
                column = _column(left)
                if op in _OPS and pushable(column):
                    out.append(render(column, _OPS[op], _literal(right), schema[column]))
            elif "Function" in node:
                f = node["Function"]
                fn = f["function"]["Boolean"]
                column = _column(f["input"][0])
                if fn in ("IsNull", "IsNotNull") and column in schema:
                    out.append(render(column, fn, None, schema[column]))
                elif isinstance(fn, dict) and "IsBetween" in fn and pushable(column):
                    closed = fn["IsBetween"]["closed"]
                    lo, hi = _literal(f["input"][1]), _literal(f["input"][2])
                    out.append(render(column, ">=" if closed in ("Left", "Both") else ">", lo, schema[column]))
                    out.append(render(column, "<" if closed in ("Left", "None") else "<=", hi, schema[column]))

    visit(tree)
    return out
