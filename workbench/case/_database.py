"""A SQL table or query as a source (PostgreSQL, SQLite, DuckDB): part of :mod:`workbench.case.sources`.

Drivers, chosen by what reads fastest into Arrow *and* honours each system's own credentials
(``benchmarks/bench_sources.py`` measures them):

* PostgreSQL and SQLite through ADBC (``adbc-driver-postgresql``, ``adbc-driver-sqlite``).
  The PostgreSQL driver is libpq: ``PGPASSWORD``, ``~/.pgpass``, ``PGSERVICE`` and SSL
  settings work as in ``psql``. connectorx read about as fast but ignores PGPASSWORD and
  ~/.pgpass (it wants the password in the URI, which the contract forbids).
* DuckDB through its own Python package (its Arrow export is native).

The table is a polars IO plugin: polars tells it which columns a query needs and which
simple predicates it filters on, and they become the SQL's column list and ``WHERE``.
:meth:`Database.scan_window` adds ``ts >= start AND ts < end`` explicitly, in the column's
own type, so an index on the timestamp reads only the window's rows. SQLite and DuckDB
files are opened read-only: nothing the user gave is modified.
"""

from __future__ import annotations

import contextlib
import math
import threading
import weakref
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from workbench.case._scan import CREDENTIALS, INSTALL, Source, SourceSpec, _frames, _normal_schema, _one_line, _translate
from workbench.errors import CaseError, suggest

__all__ = ["Database"]

# Where each dialect's tables are listed, for "did you mean" on a missing table.
_TABLES = {
    "postgresql": "SELECT CASE WHEN table_schema = 'public' THEN table_name ELSE table_schema || '.' || table_name END "
                  "FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
    "sqlite": "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY 1",
    "duckdb": "SELECT table_name FROM information_schema.tables ORDER BY 1",
}
_TOOL = {"postgresql": "psql", "sqlite": "sqlite3", "duckdb": "the duckdb CLI"}
_UNREACHABLE = ("could not connect", "connection refused", "could not translate host", "timeout expired", "no route to host",
                "network is unreachable", "server closed the connection", "failed to connect", "name or service not known")
_LOGIN = ("password authentication failed", "no password supplied", "authentication failed", "role \"", "pg_hba.conf",
          "peer authentication", "ident authentication")
_MISSING_TABLE = ("42P01", "no such table", "does not exist!", "table with name")
_MISSING_COLUMN = ("42703", "no such column", "referenced column")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Database(Source):
    """A table or a query result in PostgreSQL, SQLite or DuckDB."""

    def __init__(self, root: Path, spec: SourceSpec) -> None:
        super().__init__(spec.display)
        self.spec = spec
        self.dialect = spec.family
        self.file: Path | None = None
        if self.dialect in ("sqlite", "duckdb"):
            rest = spec.uri.split("://", 1)[1]
            rest = rest[1:] if rest.startswith("/") else rest  # sqlite:///rel.db is relative, sqlite:////abs.db absolute
            path = Path(rest).expanduser()
            self.file = path if path.is_absolute() else root / path
            if not self.file.is_file():
                raise self.error(f"database file {self.file} does not exist.",
                                 f"fix the uri: {self.dialect}:///relative/to/case.db or {self.dialect}:////absolute/path.db")
        if spec.table:
            self.relation = ".".join(_quote(part) for part in spec.table.split("."))
        else:
            self.relation = f"({spec.query}) AS _wb_source"
        self._epoch: dict[str, float] = {}
        # Idle connections, reused: a PostgreSQL login costs far more than a window query. Polars runs queries of one
        # collect_all on several threads, and a connection serves one query at a time, hence a pool, not one connection.
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        weakref.finalize(self, _close_all, self._idle)
        self.raw, self.select, self.schema = self._describe()

    # ------------------------------------------------------------ connections
    def _connect(self) -> Any:
        try:
            if self.dialect == "postgresql":
                import adbc_driver_postgresql.dbapi as pg

                uri = self.spec.uri
                if "connect_timeout" not in uri:  # an unreachable host fails in seconds, not minutes
                    uri += ("&" if "?" in uri else "?") + "connect_timeout=10"
                conn = pg.connect(uri, autocommit=True)
                with conn.cursor() as cur:  # text and naive timestamps are read as UTC, as the contract says
                    cur.execute("SET TIME ZONE 'UTC'")
                return conn
            if self.dialect == "sqlite":
                import adbc_driver_sqlite.dbapi as lite

                return lite.connect(f"file:{self.file}?mode=ro", autocommit=True)
            import duckdb

            return duckdb.connect(str(self.file), read_only=True)
        except ImportError as exc:
            raise self.error(f"reading {self.dialect} needs its driver ({exc}).", f"install it: {INSTALL}") from None
        except Exception as exc:  # every driver has its own exception classes
            raise self._fail(exc) from None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        """A pooled connection; one that was left mid-query (an error, a reader stopped early) is closed, not reused."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is not None and self.dialect == "postgresql" and not _alive(conn):  # the server ended it meanwhile
            _close_all([conn])
            conn = None
        if conn is None:
            conn = self._connect()
        reusable = False
        try:
            yield conn
            reusable = True
        finally:
            if reusable:
                with self._lock:
                    self._idle.append(conn)
            else:
                with contextlib.suppress(Exception):
                    conn.close()

    def _batches(self, conn: Any, sql: str, batch_size: int | None = None) -> Iterator[Any]:
        """The result of ``sql`` as pyarrow record batches, streamed (the cursor lives as long as the stream)."""
        if self.dialect == "duckdb":
            relation = conn.sql(sql)  # duckdb 2 renamed fetch_record_batch to to_arrow_reader
            read = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
            yield from read(batch_size or 122_880)
            return
        with conn.cursor() as cur:
            cur.execute(sql)
            yield from cur.fetch_record_batch()

    def _fetch(self, sql: str) -> Any:
        """The whole (small) result of ``sql`` as a pyarrow Table."""
        try:
            with self._connection() as conn:
                if self.dialect == "duckdb":
                    relation = conn.sql(sql)
                    return (getattr(relation, "to_arrow_table", None) or relation.arrow)()
                with conn.cursor() as cur:
                    cur.execute(sql)
                    return cur.fetch_arrow_table()
        except CaseError:
            raise
        except Exception as exc:
            raise self._fail(exc, sql) from None

    def _fail(self, exc: BaseException, sql: str | None = None) -> CaseError:
        """A driver error as a CaseError: the fact in the database's words, and the fix."""
        text = _one_line(exc)
        low = text.lower()
        state = str(getattr(exc, "sqlstate", "") or "")
        # libpq says "Failed to connect" for a refused login too: test for the login first
        if self.dialect == "postgresql" and (state.startswith("28") or any(s in low for s in _LOGIN)):
            return self.error(f"the server refused the login: {text}", f"{CREDENTIALS['postgresql']}; never in workbench.toml.")
        if self.dialect == "postgresql" and (state.startswith("08") or any(s in low for s in _UNREACHABLE)):
            return self.error(f"cannot reach the database server: {text}",
                              "check the host and port in the uri, and that the server accepts TCP connections from this machine "
                              "(listen_addresses, pg_hba.conf, firewall).")
        if self.spec.table and any(s.lower() in low or s == state for s in _MISSING_TABLE):
            return self._missing_table()
        if any(s.lower() in low or s == state for s in _MISSING_COLUMN):
            return self.error(f"a column is not in the table: {text}",
                              "fix the query, or map the right column in workbench.toml [columns].", [f"sql: {sql}"] if sql else [])
        if self.spec.query:
            return self.error(f"the query failed: {text}",
                              f"run the query in {_TOOL[self.dialect]} to fix it; it must be one SELECT statement.",
                              [f"query: {self.spec.query[:300]}"])
        return self.error(f"the read failed: {text}", f"check the table in {_TOOL[self.dialect]}.", [f"sql: {sql}"] if sql else [])

    def _missing_table(self) -> CaseError:
        try:
            tables = [str(t) for t in self._fetch(_TABLES[self.dialect]).column(0).to_pylist()]
        except CaseError:
            tables = []
        close = suggest(str(self.spec.table), tables)
        return self.error(f"table '{self.spec.table}' not found.",
                          f"did you mean '{close}'? Fix table = in workbench.toml [source.*]." if close else
                          "fix table = in workbench.toml [source.*] (schema.table for a schema other than public), or use query =.",
                          [f"available: {tables[:20]}{' ...' if len(tables) > 20 else ''}"])

    # ------------------------------------------------------------ the table
    def _describe(self) -> tuple[dict[str, Any], dict[str, str], pl.Schema]:
        """The stored Arrow types, the SELECT expression of each column, and the schema polars sees."""
        import pyarrow as pa

        # SQLite types come from values (ADBC infers them from the first rows), so it needs rows to describe.
        limit = 1024 if self.dialect == "sqlite" else 0
        sample = self._fetch(f"SELECT * FROM {self.relation} LIMIT {limit}")
        raw: dict[str, Any] = {}
        select: dict[str, str] = {}
        for field in sample.schema:
            raw[field.name] = field.type
            select[field.name] = _quote(field.name)
            if isinstance(field.type, pa.ExtensionType):  # PostgreSQL numeric, uuid, json...: no Arrow type of their own
                meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
                numeric = meta.get("POSTGRESQL:type") in ("numeric", "money")
                sql_type = "DOUBLE PRECISION" if numeric else "TEXT"
                raw[field.name] = pa.float64() if numeric else pa.string()
                select[field.name] = f"CAST({_quote(field.name)} AS {sql_type}) AS {_quote(field.name)}"
        empty = pa.schema([pa.field(n, t) for n, t in raw.items()]).empty_table()
        frame = pl.from_arrow(empty)
        assert isinstance(frame, pl.DataFrame)
        return raw, select, _normal_schema(frame.schema)

    def _sql(self, columns: list[str], where: list[str], limit: int | None = None) -> str:
        cols = ", ".join(self.select[c] for c in columns) or "1"
        sql = f"SELECT {cols} FROM {self.relation}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return sql + (f" LIMIT {int(limit)}" if limit is not None else "")

    def _plugin(self, where: list[str]) -> pl.LazyFrame:
        schema = self.schema

        def read(with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None,
                 batch_size: int | None) -> Iterator[pl.DataFrame]:
            pushed = _translate(predicate, schema, self._condition) if predicate is not None else []
            columns = list(with_columns) if with_columns is not None else schema.names()
            conditions = where + [c for c in pushed if c not in where]  # _frames' window filter repeats the window's range
            sql = self._sql(columns or schema.names()[:1], conditions, n_rows if predicate is None else None)
            try:
                with self._connection() as conn:
                    yield from _frames(self._batches(conn, sql, batch_size), predicate, n_rows, schema)
            except CaseError:
                raise
            except Exception as exc:
                raise self._fail(exc, sql) from None

        return pl.io.plugins.register_io_source(read, schema=schema, explain_name="workbench", explain_detail=self.display)

    def scan(self) -> pl.LazyFrame:
        return self._plugin([])

    def scan_window(self, column: str, start: datetime, end: datetime) -> pl.LazyFrame | None:
        return self._plugin(self._window(column, start, end))

    def null_counts(self, columns: Iterable[str]) -> dict[str, int] | None:
        columns = list(columns)
        if not columns:
            return {}
        counts = ", ".join(f"COUNT(*) - COUNT({_quote(c)}) AS {_quote(c)}" for c in columns)
        try:
            row = self._fetch(f"SELECT {counts} FROM {self.relation}").to_pylist()[0]
        except CaseError:
            return None
        return {c: int(row[c]) for c in columns}

    # ------------------------------------------------------------ SQL literals
    def _time_literal(self, moment: datetime, arrow_type: Any) -> str:
        import pyarrow as pa

        utc = moment.astimezone(UTC)
        if pa.types.is_timestamp(arrow_type):
            if arrow_type.tz:
                return f"CAST('{utc:%Y-%m-%d %H:%M:%S.%f}+00:00' AS TIMESTAMPTZ)"
            return f"CAST('{utc:%Y-%m-%d %H:%M:%S.%f}' AS TIMESTAMP)"
        if pa.types.is_date(arrow_type):
            return f"CAST('{utc:%Y-%m-%d}' AS DATE)"
        raise ValueError(arrow_type)

    def _condition(self, column: str, op: str, value: object, dtype: pl.DataType) -> str:
        """One pushed conjunct as SQL; raises ValueError for what cannot be said exactly (it is then not pushed)."""
        col = _quote(column)
        if op in ("IsNull", "IsNotNull"):
            return f"{col} IS {'NOT ' if op == 'IsNotNull' else ''}NULL"
        if isinstance(value, datetime):
            return f"{col} {op} {self._time_literal(value, self.raw[column])}"
        if isinstance(value, bool) or dtype == pl.Boolean:
            raise ValueError("booleans are not pushed")
        if isinstance(value, int) and dtype.is_integer():
            return f"{col} {op} {int(value)}"
        if isinstance(value, str) and dtype == pl.String:
            return f"{col} {op} '" + value.replace("'", "''") + "'"
        raise ValueError(f"{value!r} against {dtype}")

    def _window(self, column: str, start: datetime, end: datetime) -> list[str]:
        """``WHERE`` conjuncts keeping at least the rows of ``[start, end)``, in the column's stored type."""
        import pyarrow as pa

        arrow_type = self.raw[column]
        col = _quote(column)
        if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
            return [f"{col} >= {self._time_literal(start, arrow_type)}",
                    f"{col} {'<=' if pa.types.is_date(arrow_type) else '<'} {self._time_literal(end, arrow_type)}"]
        if pa.types.is_integer(arrow_type):  # epoch numbers: the loader's unit rule (seconds, ms, us or ns by magnitude)
            if column not in self._epoch:
                top = self._fetch(f"SELECT MAX(ABS({col})) FROM {self.relation}").column(0)[0].as_py() or 0
                self._epoch[column] = next(s for limit, s in ((1e11, 1e6), (1e14, 1e3), (1e17, 1.0), (math.inf, 1e-3)) if top < limit)
            scale = self._epoch[column]  # microseconds per stored unit
            lo, hi = (t.astimezone(UTC).timestamp() * 1e6 / scale for t in (start, end))
            return [f"{col} >= {math.floor(lo) - 1}", f"{col} <= {math.ceil(hi) + 1}"]
        if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):  # ISO text: parsed, with a second of margin
            first, last = (f"{t.astimezone(UTC):%Y-%m-%d %H:%M:%S}" for t in (start, end))
            if self.dialect == "sqlite":
                return [f"julianday({col}) >= julianday('{first}') - 1.0/86400", f"julianday({col}) < julianday('{last}') + 1.0/86400"]
            cast = "TRY_CAST" if self.dialect == "duckdb" else "CAST"
            parsed = f"{cast}({col} AS TIMESTAMPTZ)"
            return [f"{parsed} >= CAST('{first}+00:00' AS TIMESTAMPTZ) - INTERVAL '1 second'",
                    f"{parsed} < CAST('{last}+00:00' AS TIMESTAMPTZ) + INTERVAL '1 second'"]
        return []


def _alive(conn: Any) -> bool:
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchall()
        return True
    except Exception:
        return False


def _close_all(connections: list[Any]) -> None:
    for conn in connections:
        with contextlib.suppress(Exception):
            conn.close()
    connections.clear()
