"""workbench.case.sources: [source.*] in workbench.toml, reading where the log lives, window pushdown, and every error's hint.

Databases and object storage are real servers on loopback (tests/servers.py, started by the session).
"""

from __future__ import annotations

import io
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import tree_digest
from tests.servers import READER, READER_PASSWORD, S3, Postgres, free_port
from workbench.case import _database
from workbench.case.columns import TS
from workbench.case.loader import open_case
from workbench.case.sources import LocalFiles, ObjectStore, mask
from workbench.errors import CaseError

DAY = (datetime(2026, 11, 18, 12, tzinfo=UTC), datetime(2026, 11, 19, 12, tzinfo=UTC))


def point(case_dir: Path, source: str, name: str = "predictions", keep: tuple[str, ...] = ()) -> Path:
    """Drop the case's own table and add ``[source.NAME]`` lines to its workbench.toml."""
    for stale in (case_dir / f"{name}.parquet", case_dir / name, case_dir / f"{name}.csv"):
        if stale.is_file() and stale.name not in keep:
            stale.unlink()
    toml = case_dir / "workbench.toml"
    toml.write_text((toml.read_text() if toml.exists() else "") + f"\n[source.{name}]\n{source}\n")
    return case_dir


def pg_load(server: Postgres, table: str, frame: pl.DataFrame, index: bool = True) -> None:
    import adbc_driver_postgresql.dbapi as pg

    server.psql(f'DROP TABLE IF EXISTS "{table}"')
    with pg.connect(server.uri()) as conn, conn.cursor() as cur:
        cur.adbc_ingest(table, frame.to_arrow(), mode="create")
        conn.commit()
    if index:
        server.psql(f'CREATE INDEX ON "{table}" (ts); ANALYZE "{table}"')


def s3_put(s3: S3, bucket: str, key: str, frame: pl.DataFrame) -> None:
    client = s3.client()
    if bucket not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=bucket)
    buf = io.BytesIO()
    frame.write_parquet(buf)
    client.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())


def raises(case_dir: Path, match: str) -> CaseError:
    with pytest.raises(CaseError, match=match) as info:
        open_case(case_dir)
    return info.value


# ---------------------------------------------------------------- workbench.toml
def test_mask_hides_passwords_and_secret_parameters():
    assert mask("postgresql://reader:s3cret@db:5432/ml") == "postgresql://reader:***@db:5432/ml"
    assert mask("s3://AKIA:abc/def@bucket/x?token=zz&region=eu") == "s3://AKIA:***@bucket/x?token=***&region=eu"
    assert mask("postgresql://reader@db/ml?sslpassword=pw&sslmode=require") == "postgresql://reader@db/ml?sslpassword=***&sslmode=require"


@pytest.mark.parametrize(("uri", "hint"), [
    ("postgresql://reader:hunter2@db.internal:5432/ml", "PGPASSWORD environment variable or a ~/.pgpass line"),
    ("s3://AKIAXX:hunter2@ml-logs/ctr/", "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
    ("delta+s3://lake/ctr?aws_secret_access_key=hunter2", "AWS_ACCESS_KEY_ID"),
])
def test_a_password_in_the_toml_is_refused_and_never_printed(small_case, uri, hint):
    extra = '\ntable = "log"' if uri.startswith("postgresql") else ""
    err = raises(point(small_case, f'uri = "{uri}"{extra}'), "holds a password or secret")
    assert "hunter2" not in str(err) and "***" in str(err)
    assert hint in err.hint


@pytest.mark.parametrize(("body", "fact", "hint"), [
    ('uri = "sqlite:///x.db"\ntabel = "log"', "unknown key 'tabel' in \\[source.predictions\\]", "did you mean 'table'"),
    ('table = "log"', "has no uri", "write uri ="),
    ('uri = "sqlite:///x.db"', "exactly one of table or query", 'write table = "serving_log"'),
    ('uri = "sqlite:///x.db"\ntable = "a"\nquery = "SELECT 1"', "not both", "or query ="),
    ('uri = "s3://bucket/log/"\ntable = "log"', "its uri is not a database", "table and query apply to"),
    ('uri = "postgress://db/ml"\ntable = "log"', "scheme 'postgress://' is not supported", "did you mean 'postgres://'"),
])
def test_source_tables_are_validated(small_case, body, fact, hint):
    err = raises(point(small_case, body), fact)
    assert hint in err.hint


def test_an_unknown_source_name_gets_a_spelling_hint(small_case):
    (small_case / "workbench.toml").write_text('[source.prediction]\nuri = "predictions.parquet"\n')
    err = raises(small_case, "unknown key 'prediction' in \\[source\\]")
    assert "did you mean 'predictions'" in err.hint


def test_a_relative_path_and_a_file_url_read_the_same_log(small_case, tmp_path):
    logs = tmp_path / "elsewhere"
    logs.mkdir()
    shutil.move(small_case / "predictions.parquet", logs / "log.parquet")
    relative = open_case(point(small_case, 'uri = "../elsewhere/log.parquet"'))
    (small_case / "workbench.toml").write_text(f'[source.predictions]\nuri = "file://{logs / "log.parquet"}"\n')
    absolute = open_case(small_case)
    assert relative.rows == absolute.rows == 48 * 200
    assert relative.to_dict()["sources"]["predictions"] == str(logs / "log.parquet")
    assert relative.window_scan is None  # local files are read by row range (workbench.data._frames)


def test_a_missing_path_names_the_fix(small_case):
    err = raises(point(small_case, 'uri = "logs/2026-11/"'), "does not exist")
    assert "a path relative to the case directory" in err.hint


def write_parts(case_dir: Path, parts: dict[str, pl.DataFrame]) -> None:
    """Replace the case's predictions.parquet by a directory of parts (``relative path -> rows``)."""
    (case_dir / "predictions.parquet").unlink()
    for rel, part in parts.items():
        (case_dir / "predictions" / rel).parent.mkdir(parents=True, exist_ok=True)
        part.write_parquet(case_dir / "predictions" / rel)


def _disagreeing_parts(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    days = frame.with_columns(pl.col(TS).dt.date().cast(pl.String).alias("d")).partition_by("d", as_dict=True, include_key=False)
    parts = {f"date={key[0]}/part-0.parquet": part for key, part in sorted(days.items())}
    last = sorted(parts)[-1]
    parts[last] = parts[last].with_columns(pl.col("prediction").cast(pl.String))  # text in one part only
    return parts


def test_partitioned_parts_that_disagree_on_a_type_are_named(small_case):
    """Issue 14: today a polars SchemaError traceback; now the column, the types and the parts."""
    frame = pl.read_parquet(small_case / "predictions.parquet")
    write_parts(small_case, _disagreeing_parts(frame))
    err = raises(small_case, "the parquet parts disagree on the type of column 'prediction'")
    assert "rewrite the odd parts so 'prediction' has one type in every part" in err.hint
    assert any("string in 1 part(s): date=2026-11-19/part-0.parquet" in d for d in err.details)
    assert any("float in 1 part(s): date=2026-11-18/part-0.parquet" in d for d in err.details)


def _evolving_parts(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Day parts where the log gained a column on its second day ("creative_score", a float neither feature nor slice
    in the toml) and the feature f_c only from its second day: the first part, which readers take the schema from,
    holds neither."""
    days = frame.with_columns(pl.col(TS).dt.date().cast(pl.String).alias("d")).partition_by("d", as_dict=True, include_key=False)
    parts = {f"date={key[0]}/part-0.parquet": part.with_columns(pl.lit(0.5).alias("creative_score"))
             for key, part in sorted(days.items())}
    first = sorted(parts)[0]
    parts[first] = parts[first].drop("creative_score", "f_c")
    return parts


def test_partitioned_parts_written_before_a_column_was_added_read_it_as_null(small_case):
    """Outside test 5, c03: a log that gained a column on a later day was refused ("missing from 3 of 6 parquet
    parts"). A column the earlier parts lack is null there, as a lakehouse table reads a column added later."""
    frame = pl.read_parquet(small_case / "predictions.parquet")
    write_parts(small_case, _evolving_parts(frame))
    case = open_case(small_case)
    rows = case.predictions.collect()
    first_day = rows[TS].dt.date() == rows[TS].dt.date().min()
    assert case.rows == frame.height and "f_c" in case.features
    assert rows.filter(first_day)["f_c"].null_count() == int(first_day.sum()) > 0
    assert rows.filter(~first_day)["f_c"].null_count() == frame.filter(
        frame[TS].dt.date() > frame[TS].dt.date().min())["f_c"].null_count()
    raw = LocalFiles(small_case / "predictions").scan().collect()
    assert raw["creative_score"].null_count() == int(first_day.sum()) and raw["creative_score"].drop_nulls().eq(0.5).all()


def test_a_part_lacking_a_role_column_is_refused_naming_the_parts(small_case):
    """A feature or slice may be missing from parts written before the log gained it; the label may not: its rows
    would read as never labelled (a review: two thirds of the labels gone with no word)."""
    parts = _evolving_parts(pl.read_parquet(small_case / "predictions.parquet"))
    first = sorted(parts)[0]
    parts[first] = parts[first].rename({"label": "clicked"})
    write_parts(small_case, parts)
    err = raises(small_case, r"column 'label' \(label\) is missing from 1 of 2 parquet parts")
    assert "write 'label' into every part" in err.hint and any(first in d for d in err.details)


def test_a_snapshot_id_the_log_gained_later_is_filled_from_the_snapshots(small_case):
    """A second review: the snapshot id is no role every part needs (the loader fills a missing one from
    snapshots/index.csv), so parts written before the log gained it open as before."""
    parts = _evolving_parts(pl.read_parquet(small_case / "predictions.parquet").with_columns(pl.lit("s1").alias("snapshot_id")))
    first = sorted(parts)[0]
    parts[first] = parts[first].drop("snapshot_id")
    write_parts(small_case, parts)
    case = open_case(small_case)
    assert case.predictions.select(pl.col("snapshot_id").null_count()).collect().item() == 0


# ---------------------------------------------------------------- SQLite and DuckDB (files)
@pytest.fixture
def sqlite_case(small_case) -> Path:
    frame = pl.read_parquet(small_case / "predictions.parquet")
    with sqlite3.connect(small_case / "logs.db") as conn:  # ISO text timestamps, as SQLite apps write them
        frame.with_columns(pl.col(TS).dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ")).to_pandas().to_sql("serving_log", conn, index=False)
    return point(small_case, 'uri = "sqlite:///logs.db"\ntable = "serving_log"')


def test_sqlite_table_reads_the_same_log_and_pushes_windows(sqlite_case, small_case_template, monkeypatch):
    before = tree_digest(sqlite_case)
    case = open_case(sqlite_case)
    reference = open_case(small_case_template)
    assert case.rows == reference.rows and case.features == reference.features
    assert case.predictions.collect().equals(reference.predictions.collect())
    sql: list[str] = []
    original = _database.Database._sql
    monkeypatch.setattr(_database.Database, "_sql", lambda self, *a, **k: sql.append(original(self, *a, **k)) or sql[-1])
    window = case.window_scan(*DAY).filter(pl.col(TS).is_between(*DAY, closed="left")).select("prediction", "f_a").collect()
    expected = reference.predictions.filter(pl.col(TS).is_between(*DAY, closed="left")).select("prediction", "f_a").collect()
    assert window.equals(expected)
    assert sql == ['SELECT "ts", "prediction", "f_a" FROM "serving_log" WHERE julianday("ts") >= julianday(\'2026-11-18 12:00:00\') '
                   "- 1.0/86400 AND julianday(\"ts\") < julianday('2026-11-19 12:00:00') + 1.0/86400"]
    assert tree_digest(sqlite_case) == before  # opened read-only


def test_sqlite_query_source(small_case, sqlite_case):
    (small_case / "workbench.toml").write_text(
        "[source.predictions]\nuri = \"sqlite:///logs.db\"\nquery = \"SELECT * FROM serving_log WHERE country = 'US'\"\n")
    case = open_case(small_case)
    assert case.to_dict()["sources"]["predictions"] == "sqlite:///logs.db (query)"
    assert case.predictions.select(pl.col("country").unique()).collect()["country"].to_list() == ["US"]


def test_sqlite_missing_table_lists_what_there_is(sqlite_case):
    toml = sqlite_case / "workbench.toml"
    toml.write_text(toml.read_text().replace('table = "serving_log"', 'table = "serving_logs"'))
    err = raises(sqlite_case, "table 'serving_logs' not found")
    assert err.hint.startswith("did you mean 'serving_log'?") and "available: ['serving_log']" in err.details[0]


def test_sqlite_missing_file(small_case):
    err = raises(point(small_case, 'uri = "sqlite:///nope.db"\ntable = "t"'), "database file .*nope.db does not exist")
    assert "sqlite:////absolute/path.db" in err.hint


def test_duckdb_table_reads_the_same_log(small_case, small_case_template):
    import duckdb

    frame = pl.read_parquet(small_case / "predictions.parquet")
    with duckdb.connect(str(small_case / "logs.duckdb")) as conn:
        conn.register("frame", frame.to_arrow())
        conn.execute("CREATE TABLE serving_log AS SELECT * FROM frame")
    case = open_case(point(small_case, 'uri = "duckdb:///logs.duckdb"\ntable = "serving_log"'))
    assert case.predictions.collect().equals(open_case(small_case_template).predictions.collect())
    assert case.window_scan(*DAY).select(pl.len()).collect().item() == frame.filter(pl.col(TS).is_between(*DAY, closed="left")).height


def test_iceberg_table_from_its_metadata_file(small_case, small_case_template, tmp_path):
    from pyiceberg.catalog.sql import SqlCatalog

    frame = pl.read_parquet(small_case / "predictions.parquet")
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    catalog = SqlCatalog("wb", uri=f"sqlite:///{warehouse / 'catalog.db'}", warehouse=f"file://{warehouse}")
    catalog.create_namespace("ml")
    table = catalog.create_table("ml.serving_log", schema=frame.to_arrow().schema)
    table.append(frame.to_arrow())
    case = open_case(point(small_case, f'uri = "iceberg+{table.metadata_location}"'))
    assert case.predictions.collect().equals(open_case(small_case_template).predictions.collect())
    assert case.window_scan(*DAY).select(pl.len()).collect().item() == frame.filter(pl.col(TS).is_between(*DAY, closed="left")).height


# ---------------------------------------------------------------- PostgreSQL
@pytest.fixture
def pg_case(small_case, pg_env) -> Path:
    pg_load(pg_env, "serving_log", pl.read_parquet(small_case / "predictions.parquet"))
    return point(small_case, f'uri = "{pg_env.uri()}"\ntable = "serving_log"')


def test_postgres_window_is_a_where_on_the_timestamp_with_only_the_needed_columns(pg_case, small_case_template, monkeypatch):
    case = open_case(pg_case)
    assert case.predictions.collect().equals(open_case(small_case_template).predictions.collect())
    sql: list[str] = []
    original = _database.Database._sql
    monkeypatch.setattr(_database.Database, "_sql", lambda self, *a, **k: sql.append(original(self, *a, **k)) or sql[-1])
    rows = case.window_scan(*DAY).select("label").collect()
    assert sql == ['SELECT "label" FROM "serving_log" WHERE "ts" >= CAST(\'2026-11-18 12:00:00.000000+00:00\' AS TIMESTAMPTZ) '
                   "AND \"ts\" < CAST('2026-11-19 12:00:00.000000+00:00' AS TIMESTAMPTZ)"]
    assert rows.height == case.predictions.filter(pl.col(TS).is_between(*DAY, closed="left")).select(pl.len()).collect().item()
    sql.clear()  # a plain polars filter on the case's LazyFrame reaches the SQL too (the model passes filter this way)
    case.predictions.filter(pl.col(TS) >= DAY[1]).select("f_b").collect()
    assert sql[0].startswith('SELECT "ts", "f_b" FROM "serving_log" WHERE "ts" >= CAST(\'2026-11-19 12:00:00.000000+00:00\'')


def test_postgres_least_privilege_reader(pg_case, monkeypatch, pg_env):
    toml = pg_case / "workbench.toml"
    toml.write_text(toml.read_text().replace(pg_env.uri(), pg_env.uri(READER)))
    monkeypatch.setenv("PGPASSWORD", READER_PASSWORD)
    assert open_case(pg_case).to_dict()["sources"]["predictions"] == f"{pg_env.uri(READER)} (table serving_log)"


def test_postgres_unreachable_host(small_case, pg_env):
    err = raises(point(small_case, f'uri = "{pg_env.uri(port=free_port())}"\ntable = "serving_log"'), "cannot reach the database server")
    assert "check the host and port in the uri" in err.hint


@pytest.mark.parametrize("password", ["wrong-password", None])
def test_postgres_refused_login(pg_case, monkeypatch, password):
    if password is None:
        monkeypatch.delenv("PGPASSWORD")
    else:
        monkeypatch.setenv("PGPASSWORD", password)
    err = raises(pg_case, "the server refused the login")
    assert "PGPASSWORD environment variable or a ~/.pgpass line" in err.hint and "never in workbench.toml" in err.hint


def test_postgres_missing_table(pg_case):
    toml = pg_case / "workbench.toml"
    toml.write_text(toml.read_text().replace('table = "serving_log"', 'table = "servinglog"'))
    err = raises(pg_case, "table 'servinglog' not found")
    assert err.hint.startswith("did you mean 'serving_log'?")


def test_postgres_missing_column(pg_case):
    toml = pg_case / "workbench.toml"
    toml.write_text('[columns]\nprediction = "p_click"\n' + toml.read_text())
    err = raises(pg_case, r"\(table serving_log\): column 'p_click' \(prediction\) not found")
    assert err.hint.startswith(f'map it in {pg_case / "workbench.toml"}: [columns] prediction = "prediction"')


def test_postgres_failing_query(small_case, pg_env):
    pg_load(pg_env, "serving_log", pl.read_parquet(small_case / "predictions.parquet"), index=False)
    err = raises(point(small_case, f'uri = "{pg_env.uri()}"\nquery = "SELECT * FROM serving_log WHERE"'), "the query failed: .*syntax error")
    assert err.hint == "run the query in psql to fix it; it must be one SELECT statement."


# ---------------------------------------------------------------- object storage (moto's S3 server)
def test_s3_partitioned_parquet_prunes_days(small_case, small_case_template, s3_env):
    frame = pl.read_parquet(small_case / "predictions.parquet")
    days = frame.with_columns(pl.col(TS).dt.date().cast(pl.String).alias("d")).partition_by("d", as_dict=True, include_key=False)
    for (day,), part in days.items():
        s3_put(s3_env, "ml-logs", f"ctr/predictions/date={day}/part-0.parquet", part)
    case = open_case(point(small_case, 'uri = "s3://ml-logs/ctr/predictions/"'))
    assert case.to_dict()["sources"]["predictions"] == "s3://ml-logs/ctr/predictions/"
    assert case.predictions.collect().equals(open_case(small_case_template).predictions.collect())
    window = case.window_scan(*DAY).filter(pl.col(TS).is_between(*DAY, closed="left")).collect()
    assert window.height == frame.filter(pl.col(TS).is_between(*DAY, closed="left")).height
    # ten days of parts: a one-day window reads the parts of that day and the day either side (the margin), no more
    for shift in range(0, 10, 2):
        for (day,), part in frame.with_columns(pl.col(TS) + pl.duration(days=shift)).with_columns(
                pl.col(TS).dt.date().cast(pl.String).alias("d")).partition_by("d", as_dict=True, include_key=False).items():
            s3_put(s3_env, "ml-logs", f"ten/date={day}/part-0.parquet", part)
    source = ObjectStore("s3://ml-logs/ten/")
    dataset = source.dataset()
    assert len(list(dataset.get_fragments())) == 10
    picked = [f.path.rsplit("/", 2)[1] for f in dataset.get_fragments(filter=source.window_filter(TS, *DAY))]
    assert sorted(picked) == ["date=2026-11-18", "date=2026-11-19", "date=2026-11-20"]  # of 2026-11-18 to -27
    assert source.null_counts(["f_a"]) == {"f_a": 5 * frame["f_a"].null_count()}


def test_s3_bucket_that_does_not_exist(small_case, s3_env):
    err = raises(point(small_case, 'uri = "s3://no-such-bucket/ctr/"'), "bucket 'no-such-bucket' does not exist")
    assert "check the bucket name in the uri; for an S3-compatible store set AWS_ENDPOINT_URL" in err.hint


def test_s3_missing_object_suggests_the_name(small_case, s3_env):
    s3_put(s3_env, "ml-logs", "ctr/predictions.parquet", pl.read_parquet(small_case / "predictions.parquet"))
    err = raises(point(small_case, 'uri = "s3://ml-logs/ctr/prediction.parquet"'), "no object or prefix at 'ml-logs/ctr/prediction.parquet'")
    assert err.hint.startswith("did you mean 'predictions.parquet'?")


def test_s3_parts_that_disagree_on_a_type_are_named(small_case, s3_env):
    for rel, part in _disagreeing_parts(pl.read_parquet(small_case / "predictions.parquet")).items():
        s3_put(s3_env, "mixed", f"log/{rel}", part)
    err = raises(point(small_case, 'uri = "s3://mixed/log/"'), "the parquet parts disagree on the type of column 'prediction'")
    assert any("date=2026-11-19/part-0.parquet" in d and d.startswith("string") for d in err.details), err.details


def test_s3_parts_written_before_a_column_was_added_read_it_as_null(small_case, s3_env):
    frame = pl.read_parquet(small_case / "predictions.parquet")
    for rel, part in _evolving_parts(frame).items():
        s3_put(s3_env, "evolving", f"log/{rel}", part)
    case = open_case(point(small_case, 'uri = "s3://evolving/log/"'))
    rows = case.predictions.collect()
    first_day = rows[TS].dt.date() == rows[TS].dt.date().min()
    assert case.rows == frame.height and rows.filter(first_day)["f_c"].null_count() == int(first_day.sum()) > 0


def test_postgres_table_dropped_after_open_names_the_fix(pg_case, pg_env):
    """An error during a later read (inside polars' scan) is the same CaseError, not a polars traceback."""
    case = open_case(pg_case)
    pg_env.psql("DROP TABLE serving_log")
    with pytest.raises(CaseError, match="table 'serving_log' not found") as info:
        case.window_scan(*DAY).select("label").collect()
    assert "fix table = in workbench.toml" in info.value.hint


def test_training_sample_from_its_own_source(small_case, sqlite_case):
    shutil.move(small_case / "training.parquet", small_case / "train_export.parquet")
    case = open_case(point(small_case, 'uri = "train_export.parquet"', name="training"))
    assert case.training is not None and case.training.collect().height == 2000
    assert case.to_dict()["sources"]["training"] == str(small_case / "train_export.parquet")


def test_a_delta_table_on_s3_without_credentials_says_so(small_case, s3_env, monkeypatch, tmp_path, capfd):
    """Without AWS_* keys deltalake's reader failed with "Kernel error -> Operation not supported" and the hint to point
    the uri at the table's root, after three 600-character WARN lines of its Rust logger (an outside test's). The plain
    s3:// reader said "no credentials"; the Delta one says so too, and quietly."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "RUST_LOG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws files
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    err = raises(point(small_case, 'uri = "delta+s3://lake/ctr_serving"'), "no credentials for s3://")
    assert "AWS_ACCESS_KEY_ID" in err.hint and "WARN" not in capfd.readouterr().err
