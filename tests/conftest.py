"""Shared fixtures: a small valid case built from scratch, and the committed sample cases."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_data" / "cases"
IN_CI = bool(os.environ.get("CI"))

MODEL_PY = '''
import torch

def build():
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
'''


def write_small_case(root: Path, hours: int = 48, per_hour: int = 200, seed: int = 0) -> Path:
    """A valid case in the default layout: 3 features, 2 slices, 2 snapshots, lineage, events."""
    import torch
    from safetensors.torch import save_file

    rng = np.random.default_rng(seed)
    n = hours * per_hour
    start = datetime(2026, 11, 18, tzinfo=UTC)
    ts = [start + timedelta(seconds=int(s)) for s in np.sort(rng.uniform(0, hours * 3600, n))]
    x = rng.normal(size=(n, 3)).astype(np.float32)
    p = 1 / (1 + np.exp(-(x[:, 0] - 2)))
    label = (rng.uniform(size=n) < p).astype(np.int8)
    frame = pl.DataFrame({
        "ts": ts, "prediction": p, "label": label,
        "f_a": x[:, 0], "f_b": x[:, 1], "f_c": x[:, 2],
        "country": rng.choice(["US", "BR", "IN"], n), "platform": rng.choice(["ios", "android"], n),
    }).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
    root.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(root / "predictions.parquet")
    frame.drop("prediction", "country", "platform").head(2000).write_parquet(root / "training.parquet")
    (root / "model.py").write_text(MODEL_PY)
    snaps = root / "snapshots"
    snaps.mkdir(exist_ok=True)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    save_file(model.state_dict(), str(snaps / "s1.safetensors"))
    torch.save(model.state_dict(), snaps / "s2.pt")
    (snaps / "index.csv").write_text(
        "snapshot_id,published_at,file,stable\n"
        "s1,2026-11-17T00:00:00Z,s1.safetensors,true\n"
        "s2,2026-11-19T00:00:00Z,s2.pt,false\n")
    (root / "lineage.json").write_text(json.dumps({
        "nodes": [{"id": "table:t", "kind": "table"}, {"id": "pipeline:p", "kind": "pipeline"},
                  {"id": "feature:f_a", "kind": "feature"}, {"id": "feature:f_b", "kind": "feature"},
                  {"id": "feature:f_c", "kind": "feature"}],
        "edges": [{"from": "table:t", "to": "pipeline:p"}, {"from": "pipeline:p", "to": "feature:f_a"},
                  {"from": "pipeline:p", "to": "feature:f_b"}, {"from": "table:t", "to": "feature:f_c"}],
    }))
    (root / "events.csv").write_text(
        "ts,kind,target,description\n"
        "2026-11-18T05:00:00Z,deploy,pipeline:p,rerun\n"
        "2026-11-19T03:00:00Z,config,table:t,\"retention, 30d\"\n")
    return root


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root``: proves nothing the user gave was modified."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def small_case_template(tmp_path_factory) -> Path:
    return write_small_case(tmp_path_factory.mktemp("template") / "case")


@pytest.fixture
def small_case(small_case_template, tmp_path) -> Path:
    """A fresh copy of the small valid case that a test may break."""
    import shutil

    return Path(shutil.copytree(small_case_template, tmp_path / "case"))


def sample_case(name: str) -> Path:
    path = SAMPLES / name
    if not path.is_dir():
        pytest.fail(f"sample case {path} is missing: run `make samples`")
    return path


def sample_cases() -> list[Path]:
    return sorted(p for p in SAMPLES.iterdir() if (p / "truth.json").exists()) if SAMPLES.is_dir() else []


def dev_case(tmp_path: Path, family: str, mode: str, seed: int, max_rows: int = 500_000) -> tuple[Path, dict]:
    """A proving-ground case of the development split, generated under ``tmp_path``, and its truth.json: the known
    answer the tests hold the workbench to (``proving_ground/README.md`` says how it draws)."""
    import proving_ground as pg

    path = pg.generate(pg.draw(family, "dev", seed, mode=mode, max_rows=max_rows), tmp_path / "case")
    return path, json.loads((path / "truth.json").read_text(encoding="utf-8"))


def with_nan_snapshots(root: Path, dest: Path, snapshot_ids: Iterable[str]) -> Path:
    """A copy of case ``root`` at ``dest`` whose snapshots ``snapshot_ids`` carry a NaN in their first tensor (an export
    bug): the model then scores every row NaN, while the log keeps what serving logged."""
    import shutil

    from safetensors.torch import load_file, save_file

    copy = Path(shutil.copytree(root, dest))
    index = pl.read_csv(copy / "snapshots" / "index.csv")
    for row in index.filter(pl.col("snapshot_id").is_in(list(snapshot_ids))).iter_rows(named=True):
        path = copy / "snapshots" / row["file"]
        state = load_file(str(path))
        state[sorted(state)[0]].view(-1)[0] = float("nan")
        save_file(state, str(path))
    return copy
