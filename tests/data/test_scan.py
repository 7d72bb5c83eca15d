"""The fused passes: partials of parts merge into the one-pass result; the analyses give the same answers from the
scans; the Dask backend gives the same diagnosis as in process.

Exactness, as workbench.data.scan states it: counts equal exactly, float sums to a relative 1e-12 (the order of
addition differs; float32 features sum in float32: 1e-5 relative, 1e-3 absolute on sums that cancel), the hash sample row for row.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.conftest import sample_case
from workbench import detect_onset, open_case
from workbench.case.columns import TS
from workbench.data import _dask
from workbench.data import scan as S
from workbench.data.calibration import calibration_shift
from workbench.data.drift import feature_drift
from workbench.data.labels import label_shift
from workbench.data.quality import quality_series
from workbench.data.slices import find_slices, slice_deltas
from workbench.errors import WorkbenchError
from workbench.rca.diagnosis import diagnose
from workbench.windows import Window

COUNTS = ("rows", "labeled")
REL = 1e-12
REL32 = 1e-5


def _equal(a: pl.DataFrame, b: pl.DataFrame, keys: list[str]) -> None:
    """Same keys and counts exactly, float sums to REL."""
    a, b = a.sort(keys), b.sort(keys).select(a.columns)
    assert a.select(keys).equals(b.select(keys))
    ints = [c for c, t in a.schema.items() if t.is_integer() and c not in keys]
    assert a.select(ints).equals(b.select(ints).cast(dict(a.select(ints).schema)))
    single = [c for c, t in a.schema.items() if t == pl.Float32]  # float32 features sum in float32: ~1e-7 per addition
    assert_frame_equal(a.drop(single), b.drop(single), check_exact=False, rel_tol=REL, abs_tol=1e-9, check_dtypes=False)
    assert_frame_equal(a.select(single), b.select(single), check_exact=False, rel_tol=REL32, abs_tol=1e-3, check_dtypes=False)


def _close(a: object, b: object, rel: float = 1e-9) -> bool:
    """Nested results equal, floats to ``rel`` (sums in another order differ in the last bits)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rel) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y, rel) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=rel, abs=1e-12, nan_ok=True)
    return a == b


def _parts(lf: pl.LazyFrame, rows: int, k: int = 3) -> list[pl.LazyFrame]:
    step = -(-rows // k)
    return [lf.slice(i, step) for i in range(0, rows, step)]


def split_case(src: Path, dst: Path, row_group: int = 3000) -> Path:
    """``src`` with its serving log as a hive-partitioned directory (one folder per day, small row groups)."""
    ts = open_case(src).columns.timestamp  # the log's own name for it (a case may map its columns)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("predictions.parquet"))
    frame = pl.read_parquet(src / "predictions.parquet")
    for (day,), group in frame.group_by(pl.col(ts).dt.date().cast(pl.String), maintain_order=True):
        folder = dst / "predictions" / f"date={day}"
        folder.mkdir(parents=True)
        group.write_parquet(folder / "part-0.parquet", row_group_size=row_group)
    return dst


@pytest.fixture(scope="module")
def upstream():
    case = open_case(sample_case("upstream_break"))
    onset = detect_onset(case)
    return case, onset


# ---------------------------------------------------------------- merges
def test_log_partials_of_parts_merge_into_the_one_pass_result(upstream):
    case, _ = upstream
    plan = S.log_plan(case, sample_rows=5000)  # fewer than the rows: the hash cut and the rank both act
    assert plan.threshold is not None
    whole = S.log_partial(case.predictions, plan)
    merged = S.merge_log([S.log_partial(p, plan) for p in _parts(case.predictions, case.rows)])
    assert merged.rows == whole.rows == case.rows
    _equal(whole.quality, merged.quality, ["window", "_score_bin", "_ece_bin"])
    for col in case.slices:
        _equal(whole.segments[col], merged.segments[col], ["window", col, "_score_bin", "_ece_bin"])
    assert whole.sample.height == 5000
    assert whole.sample.equals(merged.sample)  # equal by construction: the lowest hashes of a union
    assert whole.sample[S.HASH].is_sorted() and whole.sample[S.HASH].n_unique() == 5000


def test_the_sample_is_uniform_and_every_window_draws_from_it(upstream):
    case, onset = upstream
    log = S.log_scan(case, sample_rows=6000)
    inside = log.window_sample(onset.incident)
    share = inside.height / log.sample.height
    truth = case.predictions.filter(onset.incident.contains(TS)).select(pl.len()).collect().item() / case.rows
    assert abs(share - truth) < 4 * (truth * (1 - truth) / log.sample.height) ** 0.5  # binomial, 4 SE
    assert log.window_sample(onset.incident, 100).equals(inside.head(100))


def _bottom_k_of_windows(case, windows, k: int) -> pl.DataFrame:
    """The reference: every row of the windows hashed, the ``k`` lowest kept (no cut, no slicing)."""
    inside = case.predictions.filter(pl.any_horizontal([w.contains(TS) for w in windows]))
    return inside.with_columns(S.row_hash().alias(S.HASH)).collect().bottom_k(k, by=S.HASH).sort(S.HASH)


def test_a_sample_of_the_windows_is_the_lowest_hashes_among_their_rows(upstream):
    case, onset = upstream
    windows = S.analysis_windows(case, onset.baseline, onset.incident)
    narrow = S.log_scan(case, sample_rows=0)
    assert narrow.sample.height == 0
    sampled = S.sample_windows(case, windows.values(), narrow, sample_rows=4000)
    assert sampled.plan.threshold is not None  # fewer than the windows' rows: the cut and the rank both act
    assert sampled.sample.equals(_bottom_k_of_windows(case, windows.values(), 4000))
    assert sampled.drawn_from == sum(case.predictions.filter(w.contains(TS)).select(pl.len()).collect().item()
                                     for w in windows.values())
    assert not sampled.complete and sampled.quality.equals(narrow.quality)
    # every window's share of it is its share of the windows' rows (binomial, 4 SE), and it holds more of each
    # window's rows than a sample of the same size drawn from the whole log
    whole = S.log_scan(case, sample_rows=4000)
    for w in windows.values():
        truth = case.predictions.filter(w.contains(TS)).select(pl.len()).collect().item() / sampled.drawn_from
        share = sampled.window_sample(w).height / 4000
        assert abs(share - truth) < 4 * (truth * (1 - truth) / 4000) ** 0.5
        assert sampled.window_sample(w).height > whole.window_sample(w).height
        assert sampled.covers(w) and whole.covers(w)
    last = max(w.end for w in windows.values())
    assert not sampled.covers(Window(last - timedelta(minutes=30), last + timedelta(minutes=30)))
    # overlapping windows are read once: the union's rows
    both = [onset.incident, Window(onset.incident.start, onset.incident.end + timedelta(hours=1))]
    assert S.disjoint(both) == (Window(onset.incident.start, onset.incident.end + timedelta(hours=1)),)
    twice = S.sample_windows(case, both, narrow, sample_rows=100_000)
    assert twice.complete and twice.sample[S.HASH].n_unique() == twice.sample.height == twice.drawn_from


def test_a_sample_of_the_windows_of_a_log_out_of_time_order_is_the_same(upstream, tmp_path):
    case, onset = upstream
    shutil.copytree(case.root, tmp_path / "c", ignore=shutil.ignore_patterns("predictions.parquet"))
    pl.read_parquet(case.root / "predictions.parquet").sample(fraction=1.0, shuffle=True, seed=1).write_parquet(
        tmp_path / "c" / "predictions.parquet")
    shuffled = open_case(tmp_path / "c")
    windows = S.analysis_windows(case, onset.baseline, onset.incident).values()
    a = S.sample_windows(case, windows, S.log_scan(case, sample_rows=0), sample_rows=3000)
    b = S.sample_windows(shuffled, windows, S.log_scan(shuffled, sample_rows=0), sample_rows=3000)
    assert a.sample.equals(b.sample) and a.drawn_from == b.drawn_from


def test_window_partials_of_parts_merge_into_the_one_pass_result(upstream):
    case, onset = upstream
    log = S.log_scan(case)
    windows = S.analysis_windows(case, onset.baseline, onset.incident)
    plan = S.window_plan(case, windows, log)
    def frames(lf: pl.LazyFrame) -> dict[str, pl.LazyFrame]:
        return {name: lf.filter(w.contains(TS)) for name, w in windows.items()}
    whole = S.window_partial(frames(case.predictions), plan)
    merged = S.merge_windows([S.window_partial(frames(p), plan) for p in _parts(case.predictions, case.rows, 4)])
    _equal(whole.quality, merged.quality, ["_period", "_score_bin", "_ece_bin"])
    _equal(whole.cell_sums, merged.cell_sums, ["_period", *case.slices])
    # histograms on the fixed edges, null and out-of-scale counts: exact; moments: to REL
    _equal(whole.profiles, merged.profiles, ["_period"])
    in_process = S.window_scan(case, windows, log)
    _equal(in_process.profiles, whole.profiles, ["_period"])


def test_period_partial_coarsens_exactly_and_refuses_finer_periods(upstream):
    case, _ = upstream
    log = S.log_scan(case, every="1h")
    for every in ("1h", "6h", "1d"):
        expected = quality_series(case, every=every).table
        _equal(expected, quality_series(case, every=every, scan=log).table, ["window"])
    assert log.period_partial("15m") is None
    col = case.slices[0]
    _equal(quality_series(case, by=col).table, quality_series(case, by=col, scan=log).table, ["window", col])


# ---------------------------------------------------------------- the analyses from the scans
@pytest.mark.parametrize("name", ["upstream_break", "slice_shift", "calibration_shift", "label_drift"])
def test_the_analyses_give_the_same_answers_from_the_scans(name):
    case = open_case(sample_case(name))
    onset = detect_onset(case)
    b, i = onset.baseline, onset.incident
    log = S.log_scan(case)
    assert _close(detect_onset(case, scan=log).to_dict(), onset.to_dict())
    ws = S.window_scan(case, S.analysis_windows(case, b, i), log)
    d0, d1 = feature_drift(case, b, i), feature_drift(case, b, i, scan=ws)
    assert d0.table["feature"].to_list() == d1.table["feature"].to_list()
    assert d0.table["kind"].to_list() == d1.table["kind"].to_list()
    # the small cases fit in every sample: the same rows, the same numbers; the relations subsample 5,000 of them
    # in row order, which a log out of time order does not keep: within a correlation's sampling error (~0.014)
    relations = ["relation_baseline", "relation_incident", "label_relation_baseline", "label_relation_incident", "relation_drop"]
    _equal(d0.table.drop(relations), d1.table.drop(relations), ["feature"])
    assert_frame_equal(d0.table.select(relations), d1.table.select(relations), check_exact=False, abs_tol=0.03)
    s0, s1 = find_slices(case, b, i), find_slices(case, b, i, scan=ws)
    _equal(s0.table.drop("significant"), s1.table.drop("significant"), ["slice"])
    assert (s0.confined, s0.tested, s0.top and s0.top["slice"]) == (s1.confined, s1.tested, s1.top and s1.top["slice"])
    _equal(slice_deltas(case, b, i).table, slice_deltas(case, b, i, scan=ws).table, ["slice"])
    assert _close(label_shift(case, b, i).to_dict(), label_shift(case, b, i, scan=ws).to_dict())
    c0, c1 = calibration_shift(case, b, i), calibration_shift(case, b, i, scan=ws)
    assert (c0.calibration_only, c0.auc_incident, c0.ece_incident) == pytest.approx((c1.calibration_only, c1.auc_incident,
                                                                                       c1.ece_incident), rel=1e-9)


def test_a_scan_of_other_windows_is_not_used(upstream):
    case, onset = upstream
    log = S.log_scan(case)
    earlier = Window(onset.baseline.start - timedelta(hours=6), onset.baseline.end - timedelta(hours=6))
    other = S.window_scan(case, {"baseline": earlier, "incident": onset.incident}, log)
    assert other.cells({"baseline": onset.baseline, "incident": onset.incident}, case.slices) is None
    expected = find_slices(case, onset.baseline, onset.incident)
    _equal(expected.table.drop("significant"), find_slices(case, onset.baseline, onset.incident, scan=other).table
           .drop("significant"), ["slice"])


# ---------------------------------------------------------------- the Dask backend
@pytest.fixture(scope="module")
def split_upstream(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setattr(_dask, "PART_ROWS", 7000)  # several parts per file: row-group ranges too
    return split_case(sample_case("upstream_break"), tmp_path_factory.mktemp("split") / "upstream_break")


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_a_reader_over_the_parts_gives_exactly_the_cases_rows(split_upstream):
    case = open_case(split_upstream)
    parts = _dask.parts(case)
    assert len(parts) > len({p.uri for p in parts}) > 1  # files, and row-group ranges within them
    assert all(p.start is not None and p.hive for p in parts)
    read = _dask.reader(case)
    rows = pl.concat([read.frame(p).collect() for p in parts])
    assert rows.sort(TS, "prediction").equals(case.predictions.collect().sort(TS, "prediction"))


def test_a_reader_reads_a_features_nan_as_missing_as_the_loader_does(tmp_path):
    # the workers' select is the loader's: a feature written as NaN (Spark, numpy) is a null on either path
    from tests.data.analysis_data import write_case

    root = write_case(tmp_path / "c", seed=21, onset=50, break_="coverage")
    path = root / "predictions.parquet"
    pl.read_parquet(path).with_columns(pl.col("f_a").fill_null(float("nan"))).write_parquet(path, row_group_size=5000)
    case = open_case(root)
    parts = _dask.parts(case)
    rows = pl.concat([_dask.reader(case).frame(p).collect() for p in parts])
    assert rows["f_a"].is_nan().sum() == 0 and rows["f_a"].null_count() > 10_000
    assert rows.sort(TS, "prediction").equals(case.predictions.collect().sort(TS, "prediction"))


def test_a_reader_leaves_out_rows_without_a_finite_prediction_as_the_loader_does(tmp_path, monkeypatch):
    from tests.data.analysis_data import write_case

    monkeypatch.setattr(_dask, "PART_ROWS", 7000)  # row-group ranges within the file: each filtered on its own

    root = write_case(tmp_path / "c", seed=22, onset=50, break_="coverage")
    path = root / "predictions.parquet"
    pl.read_parquet(path).with_columns(pl.when(pl.int_range(pl.len()) % 50 == 0).then(float("nan"))
                                       .otherwise(pl.col("prediction")).alias("prediction")).write_parquet(path, row_group_size=5000)
    case = open_case(root)
    parts = _dask.parts(case)
    assert len(parts) > 1
    rows = pl.concat([_dask.reader(case).frame(p).collect() for p in parts])
    assert case.unscored is not None and rows.height == case.rows == pl.read_parquet(path).height - case.unscored.rows
    assert rows.sort(TS, "prediction").equals(case.predictions.collect().sort(TS, "prediction"))


def test_a_reader_reads_a_column_a_part_lacks_as_null_as_the_loader_does(small_case):
    """A log that gained a feature column on its second day (the first part lacks it): the workers' rows are the
    loader's, the feature null in the first day's rows."""
    from tests.case.test_sources import _evolving_parts, write_parts

    frame = pl.read_parquet(small_case / "predictions.parquet")
    write_parts(small_case, _evolving_parts(frame))
    case = open_case(small_case)
    rows = pl.concat([_dask.reader(case).frame(p).collect() for p in _dask.parts(case)])
    assert rows["f_c"].null_count() > frame.height // 3  # the first of two days
    assert rows.sort(TS, "prediction").equals(case.predictions.collect().sort(TS, "prediction"))


def test_dask_scans_equal_the_in_process_scans(split_upstream, dask_client):
    case = open_case(split_upstream)
    log, log_d = S.log_scan(case, sample_rows=5000), S.log_scan(case, sample_rows=5000, scheduler=dask_client)
    assert log_d.rows == log.rows and log_d.sample.equals(log.sample)
    _equal(log.quality, log_d.quality, ["window", "_score_bin", "_ece_bin"])
    onset = detect_onset(case, scan=log)
    windows = S.analysis_windows(case, onset.baseline, onset.incident)
    ws, ws_d = S.window_scan(case, windows, log), S.window_scan(case, windows, log_d, scheduler=dask_client)
    _equal(ws.profiles, ws_d.profiles, ["_period"])
    _equal(ws.cell_sums, ws_d.cell_sums, ["_period", *case.slices])
    # the sample of the windows: one task per part that reaches a window, merged by hash rank
    here = S.sample_windows(case, windows.values(), log, sample_rows=3000)
    there = S.sample_windows(case, windows.values(), log_d, sample_rows=3000, scheduler=dask_client)
    assert there.sample.equals(here.sample) and there.drawn_from == here.drawn_from


def test_the_per_feature_passes_on_a_dask_cluster_equal_the_in_process_ones(split_upstream, dask_client):
    """feature_timeline and feature_by_slice add their parts' counts and sums on the client (collect_sums)."""
    from workbench.data.drift import feature_by_slice, feature_timeline

    case = open_case(split_upstream)
    names = list(case.features[:3])
    here, there = feature_timeline(case, names), feature_timeline(case, names, scheduler=dask_client)
    assert here.height == there.height > 48 * 3 and set(here["feature"]) == set(names)
    _equal(here, there, ["feature", "window"])
    onset = detect_onset(case)
    for f in names:
        a = feature_by_slice(case, f, onset.baseline, onset.incident)
        b = feature_by_slice(case, f, onset.baseline, onset.incident, scheduler=dask_client)
        assert a.concentrated == b.concentrated and a.top["slice"] == b.top["slice"]
        _equal(a.table, b.table, ["slice"])


@pytest.mark.parametrize("name", ["upstream_break", "slice_shift"])
def test_the_diagnosis_on_a_dask_cluster_is_the_in_process_one(name, tmp_path, dask_client):
    case = open_case(split_case(sample_case(name), tmp_path / name))
    here, there = diagnose(case, strict=True), diagnose(case, strict=True, scheduler=dask_client)
    assert there.to_dict() == here.to_dict()
    assert here.top is not None and here.top.to_dict() == there.top.to_dict()


def test_dask_errors_name_the_fact_and_the_fix(small_case):
    case = open_case(small_case)
    with pytest.raises(WorkbenchError, match="Hint: give the address"):
        _dask.client("localhost:8786")
    with pytest.raises(WorkbenchError, match=r"cannot reach a Dask scheduler[\s\S]*Hint: start one \(`dask scheduler`"):
        _dask.client("tcp://127.0.0.1:9")
    pl.read_parquet(small_case / "predictions.parquet").write_csv(small_case / "predictions.csv")
    (small_case / "predictions.parquet").unlink()
    with pytest.raises(WorkbenchError, match="Hint: run without --scheduler"):
        _dask.parts(open_case(small_case))
    assert case.rows


def test_parts_on_object_storage_are_read_by_the_workers(tmp_path, monkeypatch):
    """Parts as s3:// URLs (moto's S3 server on loopback): a worker reads them through fsspec, credentials from its
    environment, and the scans equal the in-process ones."""
    import io

    from distributed import Client, LocalCluster

    from tests.servers import s3_server

    src = sample_case("upstream_break")
    case_dir = Path(shutil.copytree(src, tmp_path / "case", ignore=shutil.ignore_patterns("predictions.parquet")))
    frame = pl.read_parquet(src / "predictions.parquet")
    with s3_server() as s3:
        for key, value in s3.env.items():
            monkeypatch.setenv(key, value)
        client = s3.client()
        client.create_bucket(Bucket="logs")
        for (day,), group in frame.group_by(pl.col("ts").dt.date().cast(pl.String), maintain_order=True):
            buf = io.BytesIO()
            group.write_parquet(buf, row_group_size=4000)
            client.put_object(Bucket="logs", Key=f"ctr/date={day}/part-0.parquet", Body=buf.getvalue())
        (case_dir / "workbench.toml").write_text((case_dir / "workbench.toml").read_text()
                                                 + '\n[source.predictions]\nuri = "s3://logs/ctr/"\n')
        case = open_case(case_dir)
        parts = _dask.parts(case)
        assert parts and all(p.uri.startswith("s3://logs/ctr/date=") and p.remote for p in parts)
        read = _dask.reader(case)
        rows = pl.concat([read.frame(p).collect() for p in parts])
        assert rows.sort(TS, "prediction").equals(case.predictions.collect().sort(TS, "prediction"))
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0",
                          env=s3.env) as cluster, Client(cluster) as remote:
            log, log_d = S.log_scan(case, sample_rows=4000), S.log_scan(case, sample_rows=4000, scheduler=remote)
        assert log_d.sample.equals(log.sample) and log_d.rows == log.rows == frame.height
        _equal(log.quality, log_d.quality, ["window", "_score_bin", "_ece_bin"])


def test_the_share_of_rows_written_twice_is_read_from_the_sample(tmp_path):
    """A log whose every third row was written twice: the sample's share of repeated rows estimates the log's
    (exact: 2/4 of the rows are one of a pair), within four binomial errors of a 20,000-row sample; the log as
    written repeats none."""
    src = sample_case("feature_scale_bug")
    dst = tmp_path / "twice"
    shutil.copytree(src, dst)
    log = pl.read_parquet(src / "predictions.parquet")
    pl.concat([log, log.gather_every(3)]).write_parquet(dst / "predictions.parquet")
    exact = float(pl.read_parquet(dst / "predictions.parquet").is_duplicated().mean())
    assert exact == pytest.approx(0.5, abs=0.01)
    k = 20_000
    share = S.log_scan(open_case(dst), sample_rows=k).repeated()
    assert share is not None and abs(share - exact) < 4 * (exact * (1 - exact) / k) ** 0.5
    assert S.log_scan(open_case(src), sample_rows=k).repeated() == 0.0
    assert S.log_scan(open_case(src), sample_rows=0).repeated() is None
    d = diagnose(dst)
    assert d.repeated is not None and abs(d.repeated - exact) < 0.05
    assert "of the windows' sampled rows repeat another row in every column" in str(d)
    assert "repeat another row" not in str(diagnose(src))
