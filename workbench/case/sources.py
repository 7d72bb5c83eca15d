"""Where a table of the case lives and how to read it (contract v2, "Where the logs live").

A serving log of 100M rows is not exported next to a ``model.py``: it stays in a parquet
dataset on object storage, a lakehouse table or a database, and the workbench reads it
there. ``[source.predictions]`` / ``[source.training]`` in ``workbench.toml`` say where;
without them the table is ``predictions.parquet`` (or ``predictions/``, ``predictions.csv``)
in the case directory, as in v1.

Every source gives the loader the same three things:

* :meth:`Source.scan` — the whole table as a LazyFrame. Polars' projection pushdown
  reaches the source: a database is sent ``SELECT <only the needed columns>``, an object
  store reads only those parquet columns.
* :meth:`Source.scan_window` — the rows of one time window, the range pushed to where the
  data lives: a ``WHERE ts >= start AND ts < end`` in the SQL (an index on the timestamp
  then reads only the window's rows), a filter that prunes files and row groups by their
  statistics for parquet and Delta. A pass never reads the whole log to use a day of it.
* :meth:`Source.null_counts` — per-column null counts from metadata (parquet footers, the
  Delta log) or one aggregate query, so opening a case reads no feature values.

Databases and object stores are polars IO plugins (``polars.io.plugins.register_io_source``):
``case.predictions`` stays a LazyFrame, and simple predicates polars pushes into the scan
(time comparisons, null checks) become SQL or pyarrow filters as well.

Credentials are never in ``workbench.toml``: a URI that holds a password is refused, and
every URI is shown with secrets masked. Each system reads its own usual configuration:
``PGPASSWORD`` / ``~/.pgpass`` (libpq), ``AWS_*`` / ``~/.aws`` (s3fs), and so on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from workbench.case._database import Database
from workbench.case._scan import (
    _PARAM,
    _USERINFO,
    CREDENTIALS,
    DATABASES,
    INSTALL,
    OBJECT_STORES,
    Source,
    SourceSpec,
    _family,
    _frames,
    _normal_schema,
    _one_line,
    _scheme,
    _translate,
    mask,
)
from workbench.errors import CaseError, suggest

__all__ = ["DATABASES", "Source", "SourceSpec", "mask", "parse_spec", "resolve"]

FORMS = ("a path relative to the case directory or file://...", "s3://, gs://, az:// (parquet or CSV)", "delta+URL",
         "iceberg+URL (a metadata .json)", "postgresql://, sqlite:///, duckdb:/// with table or query")
# Where each system expects its credentials; named in every refusal and login error.

# ---------------------------------------------------------------- what workbench.toml says
def parse_spec(toml: Path, name: str, raw: dict[str, object]) -> SourceSpec:
    """Validate ``[source.NAME]`` (its keys were checked for spelling by the config reader)."""
    where = f"[source.{name}]"
    uri = raw.get("uri")
    if not isinstance(uri, str) or not uri.strip():
        raise CaseError(toml, f"{where} needs a uri, found {uri!r}." if "uri" in raw else f"{where} has no uri.",
                        f'write uri = "..." under {where}: one of ' + "; ".join(FORMS))
    uri = uri.strip()
    scheme = _scheme(uri)
    family = _family(scheme)
    inner = uri.split("+", 1)[1] if family in ("delta", "iceberg") else uri
    if _USERINFO.search(inner) or _PARAM.search(inner):
        fix = CREDENTIALS.get(_family(_scheme(inner)), "supply credentials the way the system expects (environment or its config file)")
        raise CaseError(toml, f"{where} uri {mask(uri)} holds a password or secret: credentials never go in workbench.toml.",
                        f"remove it from the uri and {fix}.")
    known = family in (*DATABASES.values(), "s3", "gs", "az", "delta", "iceberg", "file")
    if not known:
        close = suggest(scheme, [*DATABASES, *OBJECT_STORES, "file"])
        raise CaseError(toml, f"{where} uri scheme '{scheme}://' is not supported.",
                        (f"did you mean '{close}://'? " if close else "") + "Use one of: " + "; ".join(FORMS))
    table, query = raw.get("table"), raw.get("query")
    for key, value in (("table", table), ("query", query)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise CaseError(toml, f"{where} {key} must be a non-empty string, found {value!r}.", f'write {key} = "..."')
    if family in DATABASES.values():
        if (table is None) == (query is None):
            raise CaseError(toml, f"{where} names a database: it needs exactly one of table or query"
                            + (", not both." if table is not None else "."),
                            f'write table = "serving_log", or query = "SELECT ... FROM ..." under {where}.')
    elif table is not None or query is not None:
        raise CaseError(toml, f"{where} has {'table' if table is not None else 'query'}, but its uri is not a database.",
                        f"remove it: table and query apply to {', '.join(f'{s}://' for s in DATABASES)} URIs only.")
    return SourceSpec(uri, str(table).strip() if table else None, str(query).strip().rstrip(";") if query else None)


def _time_filter(dtype: pl.DataType, column: str, start: datetime, end: datetime) -> pl.Expr | None:
    """A filter on the stored ``column`` (its own type, so it reaches the scan), or None for types it cannot bound."""
    col = pl.col(column)
    if isinstance(dtype, pl.Datetime):
        lo, hi = (pl.lit(t if dtype.time_zone else t.astimezone(UTC).replace(tzinfo=None)).cast(dtype) for t in (start, end))
        return (col >= lo) & (col < hi)
    if dtype == pl.Date:
        return col.is_between(pl.lit(start.astimezone(UTC).date()), pl.lit((end - timedelta(microseconds=1)).astimezone(UTC).date()))
    return None


# ---------------------------------------------------------------- local files
class LocalFiles(Source):
    """A parquet file, a (hive-)partitioned parquet directory or a CSV on this machine."""

    pushes_windows = False

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path

    def parts(self) -> list[Path]:
        assert self.path is not None
        return [self.path] if self.path.is_file() else sorted(self.path.rglob("*.parquet"))

    def scan(self) -> pl.LazyFrame:
        path = self.path
        assert path is not None
        try:
            if path.is_dir():
                parts = self.parts()
                if not parts:
                    raise self.error("directory holds no *.parquet parts.",
                                     "write the table as parquet parts (e.g. date=2026-11-20/part-0.parquet).")
                union = _check_parts(self, [(str(p.relative_to(path)), _footer_schema(p)) for p in parts])
                if union is None:
                    lf = pl.scan_parquet(path / "**/*.parquet", hive_partitioning=True)
                else:
                    lf = pl.scan_parquet(path / "**/*.parquet", hive_partitioning=True, missing_columns="insert",
                                         schema=pl.from_arrow(union.empty_table()).schema)  # type: ignore[union-attr]
            elif path.suffix == ".csv":
                lf = pl.scan_csv(path, infer_schema_length=10_000)
            else:
                lf = pl.scan_parquet(path)
            lf.collect_schema()
        except CaseError:
            raise
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise self.error(f"unreadable: {_one_line(exc)}",
                             "check that the file is complete parquet (or CSV with a header row).") from None
        return lf

    def null_counts(self, columns: Iterable[str]) -> dict[str, int] | None:
        assert self.path is not None
        if self.path.suffix == ".csv":
            return None
        try:
            import pyarrow.parquet as pq

            return _footer_nulls((pq.ParquetFile(p).metadata for p in self.parts()), list(columns))
        except (OSError, ImportError):
            return None


def _footer_schema(part: Path) -> Any:
    import pyarrow.parquet as pq

    return pq.read_schema(part)


def _footer_nulls(metas: Iterable[Any], columns: list[str]) -> dict[str, int] | None:
    """Null counts summed over the row groups of parquet footers; None if any statistic is missing."""
    nulls = dict.fromkeys(columns, 0)
    for meta in metas:
        names = {meta.schema.column(i).name: i for i in range(meta.num_columns)}
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            for c in columns:
                stats = rg.column(names[c]).statistics if c in names else None
                if stats is None or not stats.has_null_count:
                    return None
                nulls[c] += stats.null_count
    return nulls


def listed_parts(parts: Sequence[str]) -> str:
    """Parts named in a message: the first three, then an ellipsis."""
    return ", ".join(parts[:3]) + (", ..." if len(parts) > 3 else "")


def _check_parts(source: Source, schemas: list[tuple[str, Any]]) -> Any:
    """Refuse parts that disagree on a column's type: name the column and the parts. Return the schema every part
    is read with (pyarrow), or None when the parts agree on their columns.

    Polars reads a directory with the first part's schema and fails mid-pass on a part
    that differs, with a SchemaError that names neither the file nor the fix. A column only some parts hold is the log's
    schema evolving (a column added on a later day, outside test 5's first control, refused before): it reads as
    null in the parts written without it, as lakehouse tables read an added column, and ``source.lacking`` names the
    parts, so the loader refuses a role column (timestamp, prediction, label) that some parts lack."""
    types: dict[str, dict[str, list[str]]] = {}
    for part, schema in schemas:
        for field in schema:
            name = str(field.type).replace("large_", "")  # polars writes large_string; readers differ in showing it
            types.setdefault(field.name, {}).setdefault(name, []).append(part)
    for column, by_type in types.items():
        if len(by_type) > 1:
            details = [f"{t} in {len(ps)} part(s): {listed_parts(ps)}" for t, ps in by_type.items()]
            raise source.error(f"the parquet parts disagree on the type of column '{column}'.",
                               f"rewrite the odd parts so '{column}' has one type in every part "
                               f"(e.g. cast it with pyarrow or polars and write the part again).", details)
    have = {column: {p for ps in by_type.values() for p in ps} for column, by_type in types.items()}
    source.lacking = {column: (tuple(p for p, _ in schemas if p not in parts), len(schemas))
                      for column, parts in have.items() if len(parts) < len(schemas)}
    if not source.lacking:
        return None
    import pyarrow as pa

    return pa.unify_schemas([schema for _, schema in schemas], promote_options="permissive")  # string beside large_string


# ---------------------------------------------------------------- object storage (fsspec)
class ObjectStore(Source):
    """A parquet file or directory (hive partitions allowed) or a CSV in s3://, gs:// or az://, through fsspec."""

    def __init__(self, uri: str) -> None:
        super().__init__(mask(uri))
        self.uri = uri
        self.protocol = uri.split("://", 1)[0].lower()
        self.family = _family(self.protocol)
        self.key = uri.split("://", 1)[1].rstrip("/")
        self._dataset: Any = None

    def _filesystem(self) -> Any:
        try:
            import fsspec

            return fsspec.filesystem(self.protocol, skip_instance_cache=True)
        except ImportError as exc:
            raise self.error(f"reading {self.protocol}:// needs the {OBJECT_STORES[self.protocol]} package ({exc}).",
                             f"install it: {INSTALL}") from None

    def _fail(self, exc: BaseException) -> CaseError:
        """An fsspec/botocore error as a CaseError naming the fact and the fix."""
        text = _one_line(exc)
        low = f"{type(exc).__name__} {text}".lower()
        if "nosuchbucket" in low or "bucket does not exist" in low or "specified bucket" in low:
            return self._missing_bucket()
        if isinstance(exc, PermissionError) or "accessdenied" in low or "forbidden" in low or "403" in low:
            return self.error(f"access denied: {text}", f"check the credentials: {CREDENTIALS[self.family]}.")
        if "credential" in low:
            return self.error(f"no credentials: {text}", f"{CREDENTIALS[self.family]}.")
        if "connect" in low or "endpoint" in low or "timeout" in low:
            return self.error(f"cannot reach the object store: {text}",
                              "check the network and, for an S3-compatible store, AWS_ENDPOINT_URL.")
        return self.error(f"unreadable: {text}", "check the URL and that the objects are parquet (or CSV with a header row).")

    def _missing_bucket(self) -> CaseError:
        bucket = self.key.split("/", 1)[0]
        return self.error(f"bucket '{bucket}' does not exist (or these credentials cannot see it).",
                          f"check the bucket name in the uri; for an S3-compatible store set AWS_ENDPOINT_URL; {CREDENTIALS[self.family]}.")

    def dataset(self) -> Any:
        """The pyarrow dataset over the fsspec filesystem (discovered once; footers are read lazily)."""
        if self._dataset is not None:
            return self._dataset
        import pyarrow.dataset as ds

        fs = self._filesystem()
        try:
            exists = fs.exists(self.key)
            if not exists:
                bucket, _, rest = self.key.partition("/")
                if not fs.exists(bucket):
                    raise self._missing_bucket()
                parent = self.key.rsplit("/", 1)[0] if "/" in rest else bucket
                found = [p.rsplit("/", 1)[-1] for p in fs.ls(parent, detail=False)] if fs.exists(parent) else []
                close = suggest(self.key.rsplit("/", 1)[-1], found)
                raise self.error(f"no object or prefix at '{self.key}'.",
                                 f"did you mean '{close}'? Fix the uri." if close else "fix the uri in workbench.toml [source.*].",
                                 [f"found under {parent}/: {found[:12]}"] if found else [])
            if fs.isdir(self.key):
                parts = sorted(p for p in fs.find(self.key) if p.endswith(".parquet") and "/_" not in p[len(self.key):]
                               and "/." not in p[len(self.key):])
                if not parts:
                    raise self.error("prefix holds no *.parquet parts.",
                                     "write the table as parquet parts (e.g. date=2026-11-20/part-0.parquet).")
                dataset = ds.dataset(self.key, filesystem=fs, format="parquet", partitioning="hive")
                union = _check_parts(self, [(f.path[len(self.key) + 1:], f.physical_schema) for f in dataset.get_fragments()])
                if union is not None:  # the discovered schema is the first part's: read every part with all columns
                    import pyarrow as pa

                    dataset = ds.dataset(self.key, filesystem=fs, format="parquet", partitioning="hive",
                                         schema=pa.unify_schemas([dataset.schema, union], promote_options="permissive"))
            else:
                fmt = "csv" if self.key.endswith(".csv") else "parquet"
                dataset = ds.dataset(self.key, filesystem=fs, format=fmt)
            dataset.schema  # noqa: B018  # touch it: a missing or broken object fails here, with our message
        except CaseError:
            raise
        except Exception as exc:  # fsspec back ends raise their own exception types
            raise self._fail(exc) from None
        self._dataset = dataset
        return dataset

    def scan(self) -> pl.LazyFrame:
        return _arrow_scan(self, self.dataset(), None)

    def scan_window(self, column: str, start: datetime, end: datetime) -> pl.LazyFrame | None:
        flt = self.window_filter(column, start, end)
        return None if flt is None else _arrow_scan(self, self.dataset(), flt)

    def window_filter(self, column: str, start: datetime, end: datetime) -> Any:
        """The pyarrow filter of a window: the time range on ``column`` and, when the log has day partitions, on them."""
        import pyarrow as pa
        import pyarrow.compute as pc

        dataset = self.dataset()
        arrow_type = dataset.schema.field(column).type if column in dataset.schema.names else None
        if arrow_type is None or not pa.types.is_timestamp(arrow_type):
            return None
        lo, hi = (_arrow_time(t, arrow_type) for t in (start, end))
        flt = (pc.field(column) >= lo) & (pc.field(column) < hi)
        # Partition pruning: a hive key holding days (date=2026-11-20) is bounded with a day of margin either side, so a
        # log partitioned by local or ingestion day still keeps its rows; _frames checks the window's row count anyway.
        for key in _day_partitions(dataset):
            first, last = (start - timedelta(days=1)).date().isoformat(), (end + timedelta(days=1)).date().isoformat()
            flt = flt & (pc.field(key) >= first) & (pc.field(key) <= last)
        return flt

    def null_counts(self, columns: Iterable[str]) -> dict[str, int] | None:
        dataset = self.dataset()
        if not hasattr(dataset, "get_fragments") or self.key.endswith(".csv"):
            return None
        try:
            return _footer_nulls((f.metadata for f in dataset.get_fragments()), list(columns))
        except Exception:  # a footer without statistics or an unreadable one: count by scanning instead
            return None


def _arrow_time(moment: datetime, arrow_type: Any) -> Any:
    import pyarrow as pa

    value = moment.astimezone(UTC)
    return pa.scalar(value if arrow_type.tz else value.replace(tzinfo=None), type=pa.timestamp("us", arrow_type.tz)).cast(arrow_type)


def _day_partitions(dataset: Any) -> list[str]:
    """Hive partition keys whose values are ISO days (YYYY-MM-DD): the usual way a log is partitioned."""
    partitioning = getattr(dataset, "partitioning", None)
    if partitioning is None or not getattr(partitioning, "dictionaries", None):
        return []
    keys = []
    for field, values in zip(partitioning.schema, partitioning.dictionaries, strict=False):
        if values is not None and str(field.type) == "string" and len(values) and all(
                re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) for v in values.to_pylist()):
            keys.append(field.name)
    return keys


def _arrow_scan(source: Source, dataset: Any, flt: Any) -> pl.LazyFrame:
    """A LazyFrame over a pyarrow dataset: projection, simple predicates and ``flt`` reach the pyarrow scanner."""
    schema = _normal_schema(pl.from_arrow(dataset.schema.empty_table()).schema)  # type: ignore[union-attr]
    # Day partitions (date=2026-11-20) read as Date, as polars reads a local hive directory: not a slice column.
    schema = pl.Schema({n: pl.Date if n in _day_partitions(dataset) else t for n, t in schema.items()})

    def render(column: str, op: str, value: object, dtype: pl.DataType) -> Any:
        return _arrow_condition(column, op, value, dataset.schema.field(column).type)

    def read(with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None,
             batch_size: int | None) -> Iterator[pl.DataFrame]:
        pushed = _translate(predicate, schema, render) if predicate is not None else []
        condition = flt
        for cond in pushed:
            condition = cond if condition is None else condition & cond
        columns = with_columns if with_columns is not None else schema.names()
        try:
            batches = dataset.scanner(columns=columns, filter=condition, batch_size=batch_size or 131_072).to_batches()
            yield from _frames(batches, predicate, n_rows, schema)
        except CaseError:
            raise
        except Exception as exc:
            raise source.error(f"unreadable: {_one_line(exc)}",
                               "check that every part is readable parquet (or CSV with a header row).") from None

    return pl.io.plugins.register_io_source(read, schema=schema, explain_name="workbench", explain_detail=source.display)


def _arrow_condition(column: str, op: str, value: object, arrow_type: Any) -> Any:
    """One pushed conjunct as a pyarrow expression on the stored column (its own type)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    field = pc.field(column)
    if op == "IsNull":
        return field.is_null()
    if op == "IsNotNull":
        return field.is_valid()
    if isinstance(value, datetime):
        if not pa.types.is_timestamp(arrow_type):
            raise ValueError(arrow_type)
        value = _arrow_time(value, arrow_type)
    elif pa.types.is_string(arrow_type) and not isinstance(value, str):  # a day partition shown as Date: not pushed
        raise ValueError(arrow_type)
    return {"=": field.__eq__, "<>": field.__ne__, "<": field.__lt__, "<=": field.__le__, ">": field.__gt__, ">=": field.__ge__}[op](value)


# ---------------------------------------------------------------- lakehouse tables
def _s3_credentials() -> bool:
    """Whether the environment names any S3 credentials the usual way (keys, a profile, a web identity, a container
    role, or a credentials file); without them a Delta table on S3 fails with a message about something else."""
    names = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
             "AWS_CONTAINER_CREDENTIALS_FULL_URI")
    files = (os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"), "~/.aws/config")
    return any(os.environ.get(n) for n in names) or any(Path(f).expanduser().is_file() for f in files)


class Delta(Source):
    """A Delta Lake table (``delta+URL``), pinned to the version current at open; polars' scan skips files by their stats."""

    def __init__(self, uri: str, location: str) -> None:
        super().__init__(mask(uri))
        self.location = location
        # deltalake's Rust logger otherwise prints each failed cloud-metadata probe (three 600-character WARN lines
        # before an error that already says what went wrong); a user's own RUST_LOG stands
        os.environ.setdefault("RUST_LOG", "error")
        try:
            from deltalake import DeltaTable
        except ImportError as exc:
            raise self.error(f"reading a Delta table needs the deltalake package ({exc}).", f"install it: {INSTALL}") from None
        try:
            self.table = DeltaTable(location)
        except Exception as exc:  # deltalake's TableNotFoundError and object-store errors
            scheme = _scheme(location)
            if _family(scheme) == "s3" and not _s3_credentials():  # the Rust reader says "Operation not supported"
                raise self.error(f"no credentials for {scheme}:// ({_one_line(exc)}).",
                                 f"{CREDENTIALS['s3']}.") from None
            raise self.error(f"no readable Delta table: {_one_line(exc)}",
                             "point the uri at the table's root directory (the one holding _delta_log/).") from None
        self.version = self.table.version()

    def scan(self) -> pl.LazyFrame:
        try:
            lf = pl.scan_delta(self.location, version=self.version)
            lf.collect_schema()
        except Exception as exc:
            raise self.error(f"unreadable: {_one_line(exc)}", "check that the Delta table is readable by deltalake.") from None
        return lf

    def scan_window(self, column: str, start: datetime, end: datetime) -> pl.LazyFrame | None:
        lf = self.scan()
        flt = _time_filter(lf.collect_schema()[column], column, start, end)
        return None if flt is None else lf.filter(flt)

    def null_counts(self, columns: Iterable[str]) -> dict[str, int] | None:
        import pyarrow as pa

        try:
            actions = pl.DataFrame(pa.table(self.table.get_add_actions(flatten=True)))
            names = [f"null_count.{c}" for c in columns]
            if not all(n in actions.columns for n in names) or actions.select(pl.col(names).null_count().sum()).sum_horizontal().item():
                return None
            return {n.removeprefix("null_count."): int(v or 0) for n, v in actions.select(pl.col(names).sum()).row(0, named=True).items()}
        except Exception:  # no stats in the log: count by scanning instead
            return None


class Iceberg(Source):
    """An Iceberg table from its metadata JSON (``iceberg+URL``), read by polars through pyiceberg."""

    def __init__(self, uri: str, location: str) -> None:
        super().__init__(mask(uri))
        self.location = location

    def scan(self) -> pl.LazyFrame:
        try:
            import pyiceberg  # noqa: F401
        except ImportError as exc:
            raise self.error(f"reading an Iceberg table needs the pyiceberg package ({exc}).", f"install it: {INSTALL}") from None
        try:
            lf = pl.scan_iceberg(self.location)
            lf.collect_schema()
        except Exception as exc:
            raise self.error(f"unreadable Iceberg table: {_one_line(exc)}",
                             "point the uri at the table's current metadata file (metadata/vN.metadata.json).") from None
        return lf

    def scan_window(self, column: str, start: datetime, end: datetime) -> pl.LazyFrame | None:
        lf = self.scan()
        flt = _time_filter(lf.collect_schema()[column], column, start, end)
        return None if flt is None else lf.filter(flt)


# ---------------------------------------------------------------- resolution
def _local(root: Path, location: str) -> Path:
    if location.startswith("file://"):
        location = location.removeprefix("file://")
    path = Path(location).expanduser()
    return (path if path.is_absolute() else root / path).resolve()


def defaults(root: Path, stem: str) -> list[Path]:
    """The v1 default files of table ``stem`` that exist, in the order they are read (the first wins)."""
    return [p for p in (root / f"{stem}.parquet", root / stem, root / f"{stem}.csv") if p.exists()]


def _default(root: Path, stem: str, required: bool) -> Source | None:
    files = defaults(root, stem)
    if files:
        return LocalFiles(files[0])
    if required:
        found = [p.name for p in root.iterdir()] if root.is_dir() else []
        raise CaseError.missing_file(root, f"{stem}.parquet", found)
    return None


def resolve(root: Path, stem: str, spec: SourceSpec | None, *, required: bool) -> Source | None:
    """Where the table ``stem`` (predictions, training) lives: ``spec`` from ``[source.STEM]``, else the v1 default files."""
    if spec is None:
        return _default(root, stem, required)
    family = spec.family
    if family in DATABASES.values():
        return Database(root, spec)
    if family in ("s3", "gs", "az"):
        return ObjectStore(spec.uri)
    if family in ("delta", "iceberg"):
        inner = spec.uri.split("+", 1)[1]
        location = inner if "://" in inner and not inner.startswith("file://") else str(_local(root, inner))
        return Delta(spec.uri, location) if family == "delta" else Iceberg(spec.uri, location)
    path = _local(root, spec.uri)
    if not path.exists():
        raise CaseError(path, f"[source.{stem}] uri {spec.uri!r} does not exist.",
                        f"fix the uri in {root / 'workbench.toml'}: a path relative to the case directory, or file:///absolute/path.")
    return LocalFiles(path)
