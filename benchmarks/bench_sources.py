"""Does a window read on a database touch only the window? ``python benchmarks/bench_sources.py [--rows N]``.

1. Starts a throwaway PostgreSQL cluster on loopback (tests/servers.py: Debian's server, run
   as an unprivileged user) and COPYs a synthetic serving log of N rows (default 10M, 30 days,
   ts/prediction/label/snapshot_id, 8 features, 2 slices) in 1M-row chunks through ADBC, then
   indexes the timestamp.
2. Opens it as a case (``[source.predictions]``) and times a one-day window read through the
   workbench's window read (``case.window_scan``, what ``workbench.data._frames`` uses) for the
   columns a quality pass needs, against reading the same columns of the whole table.
3. Shows from PostgreSQL's own statistics what the window read touched: the rows
   ``pg_stat_user_tables`` counts as read by index and by sequential scan during the read, and
   ``EXPLAIN (ANALYZE, BUFFERS)`` of the exact SQL the workbench sent.
4. Compares the readers on a full read of 1M rows: ADBC (what the workbench uses), connectorx
   and psycopg for PostgreSQL; ADBC, connectorx and the standard library for SQLite.

Writes benchmarks/results/sources.json, with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.servers import PASSWORD, Postgres, postgres_server  # noqa: E402  # the repo root is on sys.path only now
from workbench.case import _database  # noqa: E402
from workbench.case.columns import LABEL, PREDICTION, TS  # noqa: E402
from workbench.case.loader import open_case  # noqa: E402

START = datetime(2026, 10, 22, tzinfo=UTC)
DAYS = 30
CHUNK = 1_000_000


def load() -> float:
    return os.getloadavg()[0]


def chunk(i: int, rows: int, total: int, rng: np.random.Generator) -> pl.DataFrame:
    """Rows ``i*CHUNK ...`` of a log spread evenly over DAYS days, in time order."""
    span = DAYS * 86_400 * 1_000_000
    offsets = (np.arange(i * CHUNK, i * CHUNK + rows, dtype=np.float64) * (span / total)).astype(np.int64)  # int64 products overflow
    x = rng.normal(size=(rows, 8)).astype(np.float32)
    p = 1 / (1 + np.exp(-(x[:, 0] - 2)))
    frame = pl.DataFrame({
        "ts": (pl.Series(offsets) + int(START.timestamp() * 1_000_000)).cast(pl.Datetime("us", "UTC")),
        "prediction": p.astype(np.float32), "label": (rng.uniform(size=rows) < p).astype(np.int16),
        "snapshot_id": np.where(offsets < span // 2, "s1", "s2"),
        **{f"f_{j}": x[:, j] for j in range(8)},
        "country": rng.choice(["US", "BR", "IN", "DE", "JP"], rows), "platform": rng.choice(["ios", "android", "web"], rows),
    })
    return frame


def build(server: Postgres, rows: int) -> float:
    import adbc_driver_postgresql.dbapi as pg

    rng = np.random.default_rng(0)
    t = time.perf_counter()
    server.psql("DROP TABLE IF EXISTS serving_log")
    with pg.connect(server.uri()) as conn, conn.cursor() as cur:
        for i in range((rows + CHUNK - 1) // CHUNK):
            cur.adbc_ingest("serving_log", chunk(i, min(CHUNK, rows - i * CHUNK), rows, rng).to_arrow(), mode="append" if i else "create")
            conn.commit()
            print(f"  copied {min((i + 1) * CHUNK, rows):,} rows ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
    server.psql("CREATE INDEX serving_log_ts ON serving_log (ts)")
    server.psql("VACUUM ANALYZE serving_log")  # psql -c runs several statements in one transaction, which VACUUM refuses
    return time.perf_counter() - t


def table_stats(server: Postgres) -> dict[str, int]:
    """The table's access counters, after ending every other session: a backend flushes its counts when it exits,
    while an idle one may hold them back for up to 10 s."""
    server.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'ml' AND pid <> pg_backend_pid()")
    time.sleep(1.0)
    out = server.psql("SELECT seq_scan, seq_tup_read, COALESCE(idx_scan, 0), COALESCE(idx_tup_fetch, 0) "
                      "FROM pg_stat_user_tables WHERE relname = 'serving_log'").strip().split("|")
    return dict(zip(["seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch"], map(int, out), strict=True))


def timed(fn: Any, repeat: int = 3) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(round(time.perf_counter() - t, 3))
    return times, result


def window_read(server: Postgres, root: Path, rows: int) -> dict[str, Any]:
    case_dir = root / "case"
    case_dir.mkdir()
    (case_dir / "workbench.toml").write_text('[case]\nname = "bench_sources"\n[columns]\nfeatures = ["f_*"]\n'
                                             f'[source.predictions]\nuri = "{server.uri()}"\ntable = "serving_log"\n')
    t = time.perf_counter()
    case = open_case(case_dir)
    open_s = time.perf_counter() - t
    assert case.window_scan is not None
    day = (START + timedelta(days=DAYS // 2), START + timedelta(days=DAYS // 2 + 1))
    columns = [TS, PREDICTION, LABEL, "f_0", "country"]  # what a quality pass by slice and one feature's profile read

    sent: list[str] = []
    original = _database.Database._sql
    _database.Database._sql = lambda self, *a, **k: sent.append(original(self, *a, **k)) or sent[-1]  # type: ignore[method-assign]

    def window() -> int:
        return case.window_scan(*day).filter(pl.col(TS).is_between(*day, closed="left")).select(columns).collect().height  # type: ignore[misc]

    def whole() -> int:
        return case.predictions.select(columns).collect().height

    window()  # warm the page cache
    before = table_stats(server)  # this ends the pooled connections: the timed reads below include one login
    window_s, window_rows = timed(window)
    after = table_stats(server)
    assert abs(window_rows - rows / DAYS) <= 1, f"the window holds {window_rows:,} rows, expected {rows / DAYS:,.0f}"
    whole_s, whole_rows = timed(whole, repeat=2)
    _database.Database._sql = original  # type: ignore[method-assign]
    sql = next(s for s in sent if "WHERE" in s)
    plan = server.psql("EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) " + sql)
    touched = {k: (after[k] - before[k]) // 3 for k in after}
    return {
        "rows": rows, "open_case_s": round(open_s, 2), "window": [day[0].isoformat(), day[1].isoformat()], "columns": columns,
        "window_rows": window_rows, "window_read_s": window_s, "whole_table_read_s": whole_s, "whole_table_rows": whole_rows,
        "sql": sql, "pg_stat_user_tables_per_window_read": touched, "explain_analyze_buffers": plan.strip().splitlines(),
    }


def readers(server: Postgres, root: Path, rows: int) -> dict[str, Any]:
    """Full reads of ``rows`` rows (all 14 columns) into Arrow by each reader, 3 runs each (seconds)."""
    import adbc_driver_postgresql.dbapi as pg
    import adbc_driver_sqlite.dbapi as lite
    import connectorx as cx
    import psycopg

    server.psql(f"DROP TABLE IF EXISTS sample_1m; CREATE TABLE sample_1m AS SELECT * FROM serving_log LIMIT {rows}; ANALYZE sample_1m")
    query = "SELECT * FROM sample_1m"

    def adbc_pg() -> int:
        with pg.connect(server.uri()) as conn, conn.cursor() as cur:
            cur.execute(query)
            return int(cur.fetch_arrow_table().num_rows)

    def connectorx_pg() -> int:  # connectorx cannot read PGPASSWORD or ~/.pgpass: the password must be in the URI
        return int(cx.read_sql(server.uri().replace("wb@", f"wb:{PASSWORD}@"), query, return_type="arrow").num_rows)

    def psycopg_rows() -> int:
        with psycopg.connect(server.uri()) as conn, conn.cursor() as cur:
            cur.execute(query)
            return len(cur.fetchall())

    out: dict[str, Any] = {"rows": rows, "postgresql": {}, "sqlite": {}}
    for name, fn in (("adbc", adbc_pg), ("connectorx", connectorx_pg), ("psycopg_fetchall_tuples", psycopg_rows)):
        out["postgresql"][name] = timed(fn)[0]
    db = root / "sample.db"
    frame = pl.from_arrow(_database_frame(server))
    assert isinstance(frame, pl.DataFrame)
    with lite.connect(str(db)) as conn, conn.cursor() as cur:
        cur.adbc_ingest("sample_1m", frame.with_columns(pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ")).to_arrow(), mode="create")
        conn.commit()

    def adbc_lite() -> int:
        with lite.connect(str(db)) as conn, conn.cursor() as cur:
            cur.execute(query)
            return int(cur.fetch_arrow_table().num_rows)

    def connectorx_lite() -> int:
        return int(cx.read_sql(f"sqlite://{db}", query, return_type="arrow").num_rows)

    def stdlib_lite() -> int:
        with sqlite3.connect(db) as conn:
            return len(conn.execute(query).fetchall())

    for name, fn in (("adbc", adbc_lite), ("connectorx", connectorx_lite), ("sqlite3_fetchall_tuples", stdlib_lite)):
        out["sqlite"][name] = timed(fn)[0]
    out["median_s"] = {db_: {k: statistics.median(v) for k, v in d.items()} for db_, d in out.items() if isinstance(d, dict)}
    return out


def _database_frame(server: Postgres) -> Any:
    import adbc_driver_postgresql.dbapi as pg

    with pg.connect(server.uri()) as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM sample_1m")
        return cur.fetch_arrow_table()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--reader-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    os.environ["PGPASSWORD"] = PASSWORD  # the throwaway cluster's password, supplied as a user would
    result: dict[str, Any] = {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "cores": os.cpu_count(),
                              "load_avg_1m_before": round(load(), 2)}
    root = Path(tempfile.mkdtemp(prefix="wb-bench-sources-"))
    try:
        with postgres_server() as server:
            result["postgres"] = server.psql("SHOW server_version").strip()
            result["build_s"] = round(build(server, args.rows), 1)
            result["load_avg_1m_window"] = round(load(), 2)
            result["window_read"] = window_read(server, root, args.rows)
            result["readers"] = readers(server, root, args.reader_rows)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["load_avg_1m_after"] = round(load(), 2)
    out = HERE / "results" / "sources.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    w = result["window_read"]
    print(f"one-day window of {w['rows']:,} rows: {w['window_rows']:,} rows in {min(w['window_read_s']):.2f} s "
          f"(whole table, same columns: {min(w['whole_table_read_s']):.2f} s); "
          f"PostgreSQL per window read: {w['pg_stat_user_tables_per_window_read']}; load {result['load_avg_1m_window']}")
    print(f"readers, median s over {args.reader_rows:,} rows: {result['readers']['median_s']}")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
