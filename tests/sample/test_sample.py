"""Tests for workbench.sample: determinism, layout and that each injected incident is really there."""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import json
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import load_file

from workbench.sample import INCIDENTS, ColumnNames, add_cli, generate_case
from workbench.sample import generate as generate_module
from workbench.sample.incidents import KIND

ROWS = 24_000
SEED = 0
WINDOW_START = datetime.fromisoformat("2026-11-18T00:00:00+00:00")
REPO = Path(__file__).resolve().parents[2]


# --- helpers -----------------------------------------------------------------------------


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _columns(case: Path) -> ColumnNames:
    return ColumnNames.renamed() if "event_time" in (case / "workbench.toml").read_text() else ColumnNames()


def _predictions(case: Path) -> pl.DataFrame:
    path = case / "predictions.parquet"
    if path.exists():
        return pl.read_parquet(path)
    return pl.read_parquet(case / "predictions", hive_partitioning=True).drop("date")


def _snapshots(case: Path) -> list[dict[str, str]]:
    with (case / "snapshots" / "index.csv").open() as f:
        return list(csv.DictReader(f))


def _state(case: Path, file: str) -> dict[str, torch.Tensor]:
    path = case / "snapshots" / file
    if path.suffix == ".pt":
        return torch.load(path, weights_only=True)
    return load_file(str(path))


def _build_model(case: Path) -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location(f"case_model_{case.name}", case / "model.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build()


def _rescore(case: Path, df: pl.DataFrame) -> np.ndarray:
    """Served probability recomputed from model.py and each row's snapshot."""
    cols = _columns(case)
    model = _build_model(case)
    x = df.select(cols.features()).fill_null(0.0).to_numpy().astype(np.float32)
    out = np.empty(len(df), dtype=np.float32)
    sid = df[cols.snapshot].to_numpy()
    for snap in _snapshots(case):
        m = sid == snap["snapshot_id"]
        if m.any():
            model.load_state_dict(_state(case, snap["file"]))
            with torch.no_grad():
                out[m] = torch.sigmoid(model(torch.from_numpy(x[m]))).numpy()
    return out


def _onset(truth: dict) -> datetime:
    return datetime.fromisoformat(truth["onset"].replace("Z", "+00:00"))


def _split(case: Path, truth: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Rows of the day before the onset, and rows from the onset on."""
    ts = _columns(case).timestamp
    df = _predictions(case)
    onset = _onset(truth)
    before = df.filter((pl.col(ts) < onset) & (pl.col(ts) >= onset - (onset - WINDOW_START) / 2))
    return before, df.filter(pl.col(ts) >= onset)


def _ne(df: pl.DataFrame, cols: ColumnNames) -> float:
    """Normalized entropy: log loss over the entropy of the base rate (He et al., 2014)."""
    df = df.filter(pl.col(cols.label).is_not_null())
    y = df[cols.label].cast(pl.Float64).to_numpy()
    p = np.clip(df[cols.prediction].cast(pl.Float64).to_numpy(), 1e-7, 1 - 1e-7)
    base = y.mean()
    ll = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    return float(ll / -(base * np.log(base) + (1 - base) * np.log(1 - base)))


def _null_rate(df: pl.DataFrame, col: str) -> float:
    return df[col].null_count() / max(len(df), 1)


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cases")
    return {
        name: generate_case(
            name,
            root / name,
            seed=SEED,
            rows=ROWS,
            columns=ColumnNames.renamed() if name == "calibration_shift" else None,
            snapshot_format="pt" if name == "snapshot_bad_data" else "safetensors",
        )
        for name in INCIDENTS
    }


def _truth(case: Path) -> dict:
    return json.loads((case / "truth.json").read_text())


# --- API ---------------------------------------------------------------------------------


def test_incidents_are_sorted_and_complete() -> None:
    assert list(INCIDENTS) == sorted(INCIDENTS)
    assert len(INCIDENTS) == 11
    assert set(KIND) == set(INCIDENTS)


def test_unknown_incident_has_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Hint: did you mean 'label_drift'"):
        generate_case("label_drfit", tmp_path)


@pytest.mark.parametrize(
    ("incident", "kwargs"),
    [
        ("snapshot_corrupt", {}),
        ("feature_stale", {"snapshot_format": "pt", "columns": ColumnNames.renamed(), "partitioned": True}),
    ],
)
def test_same_seed_gives_the_same_bytes(tmp_path: Path, incident: str, kwargs: dict) -> None:
    a = generate_case(incident, tmp_path / "a", seed=7, rows=3000, **kwargs)
    b = generate_case(incident, tmp_path / "b", seed=7, rows=3000, **kwargs)
    da, db = _digests(a), _digests(b)
    assert len(da) >= 20
    assert da == db


def test_seeds_change_the_incident() -> None:
    from workbench.sample.incidents import plan

    for incident in INCIDENTS:
        if incident == "control":
            continue
        plans = {(p.onset_hour, p.features, p.node, p.layer, p.mode) for p in (plan(incident, s) for s in range(8))}
        assert len(plans) > 1, incident


def test_partitioned_by_default_above_the_threshold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real threshold is 2M rows; a small one keeps the test fast and exercises the same path.
    monkeypatch.setattr(generate_module, "PARTITION_ROWS", 5_000)
    case = generate_case("control", tmp_path / "c", rows=6_000)
    parts = sorted(p.relative_to(case).as_posix() for p in (case / "predictions").rglob("*.parquet"))
    assert parts == [
        "predictions/date=2026-11-18/part-0.parquet",
        "predictions/date=2026-11-19/part-0.parquet",
        "predictions/date=2026-11-20/part-0.parquet",
    ]
    assert not (case / "predictions.parquet").exists()
    df = _predictions(case)
    assert len(df) == 6_000
    assert df["ts"].dt.date().cast(pl.String).n_unique() == 3


def test_cli_writes_a_case_and_prints_its_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="workbench")
    add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["sample", "--incident", "label_drift", "--out", str(tmp_path / "x"), "--seed", "3", "--rows", "2000"]
    )
    assert args.run(args) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(tmp_path / "x")
    assert _truth(Path(out))["kind"] == "label"


def test_cli_refuses_to_write_over_a_case_it_did_not_generate(tmp_path: Path) -> None:
    """`workbench sample --out` into a user's case deleted its snapshots/ and replaced its serving log; it is refused,
    nothing changed. Over a case it generated (truth.json) it writes again, as `make samples` does."""
    from workbench.cli import main

    users = tmp_path / "mine"
    shutil.copytree(REPO / "sample_data" / "cases" / "control", users)
    (users / "truth.json").unlink()
    before = {p.relative_to(users): p.read_bytes() for p in users.rglob("*") if p.is_file()}
    assert main(["sample", "--incident", "control", "--out", str(users), "--rows", "2000"]) == 2
    assert {p.relative_to(users): p.read_bytes() for p in users.rglob("*") if p.is_file()} == before
    ours = tmp_path / "ours"
    assert main(["sample", "--incident", "control", "--out", str(ours), "--rows", "2000"]) == 0
    assert main(["sample", "--incident", "label_drift", "--out", str(ours), "--rows", "2000"]) == 0
    assert _truth(ours)["kind"] == "label"


def test_model_py_is_self_contained() -> None:
    source = (REPO / "workbench" / "sample" / "ctr_model.py").read_text()
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert all("workbench" not in line for line in imports), imports


# --- every case --------------------------------------------------------------------------


@pytest.mark.parametrize("incident", INCIDENTS)
def test_case_layout_and_truth(cases: dict[str, Path], incident: str) -> None:
    case = cases[incident]
    cols = _columns(case)
    truth = _truth(case)
    assert set(truth) >= {"kind", "target", "onset", "description"}
    assert truth["kind"] == KIND[incident]
    for name in (
        "workbench.toml",
        "predictions.parquet",
        "training.parquet",
        "model.py",
        "lineage.json",
        "events.csv",
        "truth.json",
        "snapshots/index.csv",
    ):
        assert (case / name).is_file(), name

    df = _predictions(case)
    assert len(df) == ROWS
    assert df.schema[cols.timestamp] == pl.Datetime("us", "UTC")
    assert df.columns[:4] == [cols.timestamp, cols.prediction, cols.label, cols.snapshot]
    features = cols.features()
    assert len(features) == 24 and features == sorted(features)
    assert all(df.schema[f] == pl.Float32 for f in features)
    p = df[cols.prediction].to_numpy()
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    # natural nulls in every feature, 1-5% before any incident
    early = df.filter(pl.col(cols.timestamp) < WINDOW_START.replace(day=19))
    assert all(0.005 < _null_rate(early, f) < 0.07 for f in features)
    # slice skew: US ~40%, android ~55%
    assert 0.35 < (df[cols.slice("country")] == "US").mean() < 0.45
    assert 0.5 < (df[cols.slice("platform")] == "android").mean() < 0.6

    # label delay: the last hour is mostly unlabelled, a day earlier everything is labelled
    ts = pl.col(cols.timestamp)
    last_hour = df.filter(ts >= datetime.fromisoformat("2026-11-20T23:00:00+00:00"))
    assert _null_rate(last_hour, cols.label) > 0.6
    assert df.filter(ts < datetime.fromisoformat("2026-11-20T12:00:00+00:00"))[cols.label].null_count() == 0

    # each row names the latest snapshot published at or before it
    snaps = _snapshots(case)
    assert snaps[0]["stable"] == "true" and all(s["stable"] == "false" for s in snaps[1:])
    published = np.array([np.datetime64(s["published_at"].rstrip("Z"), "us") for s in snaps])
    served = np.searchsorted(published, df[cols.timestamp].dt.replace_time_zone(None).to_numpy(), side="right") - 1
    assert (df[cols.snapshot].to_numpy() == np.array([s["snapshot_id"] for s in snaps])[served]).all()

    lineage = json.loads((case / "lineage.json").read_text())
    nodes = {n["id"] for n in lineage["nodes"]}
    assert {f"feature:{f}" for f in features} <= nodes
    assert all(e["from"] in nodes and e["to"] in nodes for e in lineage["edges"])

    train = pl.read_parquet(case / "training.parquet")
    assert {cols.timestamp, cols.label, *features} <= set(train.columns)
    assert train[cols.timestamp].max() < WINDOW_START
    assert train[cols.label].null_count() == 0

    with (case / "events.csv").open() as f:
        log = list(csv.DictReader(f))
    assert len(log) > 40 and list(log[0]) == ["ts", "kind", "target", "description"]

    if incident == "control":
        assert truth["target"] is None and truth["onset"] is None
        return
    onset = _onset(truth)
    assert (
        datetime.fromisoformat("2026-11-20T00:00:00+00:00")
        <= onset
        <= datetime.fromisoformat("2026-11-20T13:00:00+00:00")
    )
    assert onset.minute == 0 and truth["onset"].endswith(":00:00Z")
    # distractors near the onset
    near = [
        e for e in log if abs((datetime.fromisoformat(e["ts"].replace("Z", "+00:00")) - onset).total_seconds()) < 7200
    ]
    assert len(near) >= 2


@pytest.mark.parametrize("incident", INCIDENTS)
def test_served_predictions_match_model_and_snapshot(cases: dict[str, Path], incident: str) -> None:
    case = cases[incident]
    cols = _columns(case)
    df = _predictions(case).sample(3000, seed=1)
    diff = np.abs(_rescore(case, df) - df[cols.prediction].to_numpy())
    if incident == "calibration_shift":
        after = (df[cols.timestamp] >= _onset(_truth(case))).to_numpy()
        assert diff[~after].max() < 1e-5
        assert np.median(diff[after]) > 0.01
    else:
        assert diff.max() < 1e-5


@pytest.mark.parametrize("incident", [i for i in INCIDENTS if i != "control"])
def test_incident_raises_normalized_entropy(cases: dict[str, Path], incident: str) -> None:
    case = cases[incident]
    cols = _columns(case)
    truth = _truth(case)
    before, after = _split(case, truth)
    if incident == "slice_shift":
        col, value = truth["target"].split("=")
        before, after = before.filter(pl.col(col) == value), after.filter(pl.col(col) == value)
    lift = _ne(after, cols) / _ne(before, cols)
    assert 1.05 < lift < 3.0, lift


def test_control_has_no_regression(cases: dict[str, Path]) -> None:
    case = cases["control"]
    truth = {"onset": "2026-11-20T06:00:00Z"}
    before, after = _split(case, truth)
    assert abs(_ne(after, ColumnNames()) / _ne(before, ColumnNames()) - 1) < 0.08


def test_organic_drift_in_every_case(cases: dict[str, Path]) -> None:
    for case in cases.values():
        cols = _columns(case)
        df = _predictions(case)
        ts = pl.col(cols.timestamp)
        first = df.filter(ts < WINDOW_START.replace(day=19))
        last = df.filter(ts >= WINDOW_START.replace(day=20))
        for f in _truth(case)["details"]["organic_drift"]:
            assert last[f].median() > first[f].median() * 1.03, (case.name, f)


# --- each incident is visible in the raw data ---------------------------------------------


def test_feature_coverage_drop(cases: dict[str, Path]) -> None:
    case = cases["feature_coverage_drop"]
    truth = _truth(case)
    before, after = _split(case, truth)
    f = truth["target"]
    assert _null_rate(before, f) < 0.06
    assert _null_rate(after, f) > 0.85


def test_feature_scale_bug(cases: dict[str, Path]) -> None:
    case = cases["feature_scale_bug"]
    truth = _truth(case)
    before, after = _split(case, truth)
    f = truth["target"]
    ratio = after[f].median() / before[f].median()
    factor = truth["details"]["magnitude"]
    assert factor / 2 < ratio < factor * 2
    assert abs(_null_rate(after, f) - _null_rate(before, f)) < 0.03


def test_feature_stale(cases: dict[str, Path]) -> None:
    case = cases["feature_stale"]
    truth = _truth(case)
    before, after = _split(case, truth)
    f = truth["target"]
    assert after[f].drop_nulls().n_unique() == 1
    assert before[f].drop_nulls().n_unique() > 100
    assert after[f].drop_nulls()[0] == before[f].drop_nulls()[-1]


def test_upstream_break(cases: dict[str, Path]) -> None:
    case = cases["upstream_break"]
    truth = _truth(case)
    lineage = json.loads((case / "lineage.json").read_text())
    children: dict[str, list[str]] = {}
    for e in lineage["edges"]:
        children.setdefault(e["from"], []).append(e["to"])
    stack, reached = [truth["target"]], set()
    while stack:
        for c in children.get(stack.pop(), []):
            if c not in reached:
                reached.add(c)
                stack.append(c)
    features = sorted(n.removeprefix("feature:") for n in reached if n.startswith("feature:"))
    assert features == truth["details"]["features"] and len(features) >= 3
    before, after = _split(case, truth)
    for f in features:
        broke = _null_rate(after, f) > 0.9 or after[f].drop_nulls().n_unique() == 1
        assert broke and _null_rate(before, f) < 0.06, f
    others = [c for c in _columns(case).features() if c not in features]
    assert all(_null_rate(after, f) < 0.06 and after[f].n_unique() > 1 for f in others)


def test_snapshot_corrupt(cases: dict[str, Path]) -> None:
    case = cases["snapshot_corrupt"]
    truth = _truth(case)
    snaps = _snapshots(case)
    ids = [s["snapshot_id"] for s in snaps]
    i = ids.index(truth["target"])
    assert snaps[i]["published_at"].startswith(truth["onset"][:13])
    bad, prev = _state(case, snaps[i]["file"]), _state(case, snaps[i - 1]["file"])

    def rel(a: dict, b: dict, key: str) -> float:
        return float((a[key] - b[key]).norm() / b[key].norm().clamp_min(1e-12))

    layer = truth["layer"]
    assert all(torch.isfinite(t).all() for t in bad.values())
    assert rel(bad, prev, layer) > 0.3
    assert max(rel(bad, prev, k) for k in bad if k != layer and "weight" in k) < 0.1
    # the benign updates before it are small
    older = _state(case, snaps[i - 2]["file"])
    assert rel(prev, older, layer) < 0.1


def test_snapshot_bad_data(cases: dict[str, Path]) -> None:
    case = cases["snapshot_bad_data"]
    truth = _truth(case)
    snaps = _snapshots(case)
    assert all(s["file"].endswith(".pt") for s in snaps)
    i = [s["snapshot_id"] for s in snaps].index(truth["target"])
    df = _predictions(case).sample(4000, seed=2)
    cols = _columns(case)
    x = torch.from_numpy(df.select(cols.features()).fill_null(0.0).to_numpy().astype(np.float32))
    model = _build_model(case)

    def probs(k: int) -> np.ndarray:
        model.load_state_dict(_state(case, snaps[k]["file"]))
        with torch.no_grad():
            return torch.sigmoid(model(x)).numpy()

    benign = np.mean([np.abs(probs(k) - probs(k - 1)).mean() for k in range(2, i)])
    assert np.abs(probs(i) - probs(i - 1)).mean() > 4 * benign


def test_label_drift(cases: dict[str, Path]) -> None:
    case = cases["label_drift"]
    truth = _truth(case)
    assert truth["target"] == "label"
    before, after = _split(case, truth)
    assert after["label"].mean() < 0.75 * before["label"].mean()
    assert abs(after["prediction"].mean() / before["prediction"].mean() - 1) < 0.15


def test_calibration_shift_uses_renamed_columns(cases: dict[str, Path]) -> None:
    case = cases["calibration_shift"]
    toml = (case / "workbench.toml").read_text()
    for line in (
        'timestamp  = "event_time"',
        'prediction = "p_click"',
        'label      = "clicked"',
        'snapshot   = "model_version"',
    ):
        assert line in toml
    df = _predictions(case)
    assert "ts" not in df.columns and "feat_ctr_7d" in df.columns and "device_os" in df.columns
    assert _truth(case)["target"] == "calibration"
    lineage = json.loads((case / "lineage.json").read_text())
    assert "feature:feat_ctr_7d" in {n["id"] for n in lineage["nodes"]}


def test_feature_slice_break(cases: dict[str, Path]) -> None:
    case = cases["feature_slice_break"]
    truth = _truth(case)
    col, value = truth["slice"].split("=")
    f = truth["target"]
    before, after = _split(case, truth)

    def changed(a: pl.DataFrame, b: pl.DataFrame) -> bool:
        nulls = abs(_null_rate(a, f) - _null_rate(b, f)) > 0.5
        scale = not 0.5 < b[f].median() / a[f].median() < 2
        stale = b[f].drop_nulls().n_unique() == 1
        return nulls or scale or stale

    inside = pl.col(col) == value
    assert changed(before.filter(inside), after.filter(inside))
    assert not changed(before.filter(~inside), after.filter(~inside))


def test_slice_shift(cases: dict[str, Path]) -> None:
    case = cases["slice_shift"]
    truth = _truth(case)
    col, value = truth["target"].split("=")
    before, after = _split(case, truth)
    inside = pl.col(col) == value
    cols = ColumnNames()
    assert _ne(after.filter(inside), cols) > 1.3 * _ne(before.filter(inside), cols)
    assert _ne(after.filter(~inside), cols) < 1.1 * _ne(before.filter(~inside), cols)
    # features are untouched: same null rates inside the slice
    for f in cols.features():
        assert abs(_null_rate(after.filter(inside), f) - _null_rate(before.filter(inside), f)) < 0.04


# --- the committed set -------------------------------------------------------------------


def test_committed_cases_are_complete_and_small() -> None:
    root = REPO / "sample_data" / "cases"
    if not root.is_dir() or not any(root.iterdir()):
        pytest.skip("sample_data/cases not generated")
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted(INCIDENTS)
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert total < 32e6, total
    for incident in INCIDENTS:
        assert _truth(root / incident)["kind"] == KIND[incident]
