"""The same case read from parquet, PostgreSQL, S3 (moto) and a Delta table gives the same diagnosis JSON.

The committed sample case ``feature_coverage_drop`` (36k rows, a model, snapshots, lineage, events,
a training sample) is copied three times; each copy's workbench.toml points ``[source.predictions]``
at one place holding the same rows, and ``[case] name`` is copied with it, so even the name matches.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import sample_case
from tests.servers import READER, READER_PASSWORD, S3, Postgres
from workbench import diagnose
from workbench.case.loader import open_case


def _copy(sample: Path, root: Path, source: str) -> Path:
    case = Path(shutil.copytree(sample, root, ignore=shutil.ignore_patterns("predictions.parquet", "truth.json")))
    toml = case / "workbench.toml"
    toml.write_text(toml.read_text() + f"\n[source.predictions]\n{source}\n")
    return case


def _answer(case_dir: Path) -> str:
    start = time.perf_counter()
    answer = json.dumps(diagnose(open_case(case_dir)).to_dict(), sort_keys=True, indent=1, default=str)
    print(f"{case_dir}: {time.perf_counter() - start:.1f} s")  # shown with -s or on failure
    return answer


@pytest.fixture(scope="module")
def sample() -> Path:
    return sample_case("feature_coverage_drop")


def test_every_source_gives_the_parquet_answer(sample, tmp_path, postgres: Postgres, s3: S3, monkeypatch):
    import adbc_driver_postgresql.dbapi as pg
    from deltalake import write_deltalake

    frame = pl.read_parquet(sample / "predictions.parquet")
    cases: dict[str, Path] = {}

    # PostgreSQL: loaded by the superuser, read by a login that may only SELECT, password from PGPASSWORD.
    postgres.psql("DROP TABLE IF EXISTS ctr_serving_log")
    monkeypatch.setenv("PGPASSWORD", postgres.env()["PGPASSWORD"])
    with pg.connect(postgres.uri()) as conn, conn.cursor() as cur:
        cur.adbc_ingest("ctr_serving_log", frame.to_arrow(), mode="create")
        conn.commit()
    postgres.psql("CREATE INDEX ON ctr_serving_log (ts); ANALYZE ctr_serving_log")
    monkeypatch.setenv("PGPASSWORD", READER_PASSWORD)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent")
    cases["postgresql"] = _copy(sample, tmp_path / "pg", f'uri = "{postgres.uri(READER)}"\ntable = "ctr_serving_log"')

    # S3: a hive-partitioned parquet dataset, one part per day, keys from AWS_* as a user's would be.
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    client = s3.client()
    client.create_bucket(Bucket="same-answer")
    days = frame.with_columns(pl.col("ts").dt.date().cast(pl.String).alias("d")).partition_by("d", as_dict=True, include_key=False)
    for (day,), part in sorted(days.items()):
        buf = io.BytesIO()
        part.write_parquet(buf)
        client.put_object(Bucket="same-answer", Key=f"ctr/predictions/date={day}/part-0.parquet", Body=buf.getvalue())
    cases["s3"] = _copy(sample, tmp_path / "s3", 'uri = "s3://same-answer/ctr/predictions/"')

    # Delta Lake: a local table written by deltalake.
    write_deltalake(tmp_path / "lake" / "ctr_serving_log", frame.to_arrow())
    cases["delta"] = _copy(sample, tmp_path / "delta", f'uri = "delta+{tmp_path / "lake" / "ctr_serving_log"}"')

    expected = _answer(sample)
    assert json.loads(expected)["anomaly"]["detected"] and not json.loads(expected)["errors"]
    for name, case_dir in cases.items():
        assert open_case(case_dir).window_scan is not None, name  # each reads windows at the source
        assert _answer(case_dir) == expected, f"{name} gives another answer than parquet"
