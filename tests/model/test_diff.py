"""workbench.model.diff: per-tensor measures with known answers; the timeline finds the bad snapshot and layer."""

from __future__ import annotations

import json
import math
import os
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from tests.conftest import sample_cases, write_small_case
from workbench.case.loader import open_case
from workbench.errors import SnapshotError, WorkbenchError
from workbench.model.diff import diff_state_dicts, snapshot_timeline

torch.set_num_threads(2)

FEATURES = ["f_a", "f_b", "f_c"]


# ---------------------------------------------------------------- a case with a timeline of snapshots
def _net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))


def write_timeline_case(root: Path, *, n: int = 10, bad: int | None = None, layer: str = "0.weight", mode: str = "scale",
                        seed: int = 0) -> Path:
    """The small case with ``n`` snapshots every 4 h: a trained model, then benign random-walk refreshes.

    Snapshot ``bad`` has ``layer`` corrupted (``scale`` x4, ``nan`` or ``zero_rows``); later
    snapshots warm-start from it, as in production. One snapshot is a ``.pt`` file.
    """
    from safetensors.torch import save_file

    write_small_case(root, seed=seed)
    frame = pl.read_parquet(root / "predictions.parquet")
    x = torch.tensor(frame.select(FEATURES).to_numpy(), dtype=torch.float32)
    y = torch.tensor(frame["label"].to_numpy(), dtype=torch.float32)
    torch.manual_seed(seed)
    model = _net()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 3-4-1 net: threads only add synchronization (and spin on a busy machine)
    try:
        for _ in range(150):
            opt.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(-1), y).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(seed + 1)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    snaps = root / "snapshots"
    for f in snaps.iterdir():
        f.unlink()
    lines = ["snapshot_id,published_at,file,stable"]
    start = datetime(2026, 11, 17, 22, tzinfo=UTC)
    for k in range(n):
        if k:
            state = {name: t + 0.01 * (t.std() if t.numel() > 1 else t.abs()) * torch.randn(t.shape, generator=gen)
                     for name, t in state.items()}
        if k == bad:
            t = state[layer].clone()
            if mode == "scale":
                t = t * 4.0
            elif mode == "nan":
                t.view(-1)[0] = float("nan")
            elif mode == "zero_rows":
                t[:2] = 0.0
            state = {**state, layer: t}
        file = f"s{k}.pt" if k == 3 else f"s{k}.safetensors"
        if file.endswith(".pt"):
            torch.save(state, snaps / file)
        else:
            save_file(state, str(snaps / file))
        lines.append(f"s{k},{(start + timedelta(hours=4 * k)).strftime('%Y-%m-%dT%H:%M:%SZ')},{file},{'true' if k == 0 else 'false'}")
    (snaps / "index.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def benign_timeline(tmp_path_factory) -> Path:
    return write_timeline_case(tmp_path_factory.mktemp("benign") / "case")


@pytest.fixture(scope="session")
def corrupt_timeline(tmp_path_factory) -> Path:
    return write_timeline_case(tmp_path_factory.mktemp("corrupt") / "case", bad=6, layer="2.weight")


def write_malicious_pt(path: Path, sentinel: Path, legacy: bool = False) -> None:
    """A .pt whose unpickling would run ``touch sentinel``: a torch.save zip, or a bare (legacy) pickle."""

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {sentinel}",))

    if legacy:
        with path.open("wb") as fh:
            pickle.dump({"0.weight": Payload()}, fh)
    else:
        torch.save({"0.weight": Payload()}, path)


# ---------------------------------------------------------------- one pair
def test_diff_measures_have_known_values():
    a = {"w": torch.tensor([[1.0, -2.0], [3.0, 4.0]]), "b.bias": torch.tensor([1.0, 1.0]), "gone": torch.ones(1)}
    b = {"w": torch.tensor([[1.0, 2.0], [0.0, 0.0]]), "b.bias": torch.tensor([1.5, 2.5]), "new": torch.ones(1)}
    t = diff_state_dicts(a, b).table
    w = t.filter(pl.col("name") == "w").row(0, named=True)
    d = math.sqrt(16 + 9 + 16)
    assert w["rel_l2"] == pytest.approx(d / math.sqrt(30))
    assert w["max_abs"] == 4.0 and w["nonfinite"] == 0
    assert w["norm_ratio"] == pytest.approx(math.sqrt(5) / math.sqrt(30))
    assert w["sign_flip_share"] == 0.25  # -2 -> 2; zeros are not flips
    assert (w["dead_units"], w["dead_units_before"]) == (1, 0)
    bias = t.filter(pl.col("name") == "b.bias").row(0, named=True)
    assert bias["bias_shift"] == pytest.approx(1.0) and bias["dead_units"] is None
    assert dict(zip(t["name"], t["status"], strict=True)) == {"w": "ok", "b.bias": "ok", "gone": "removed", "new": "added"}


def test_nonfinite_values_are_counted_and_make_the_change_infinite():
    a = {"w": torch.ones(3, 3)}
    b = {"w": torch.ones(3, 3)}
    b["w"][1, 1] = float("nan")
    b["w"][2, 2] = float("inf")
    diff = diff_state_dicts(a, b)
    row = diff.table.row(0, named=True)
    assert row["nonfinite"] == 2 and math.isinf(row["rel_l2"]) and diff.nonfinite == 2
    assert diff.to_dict()["table"][0]["rel_l2"] is None  # JSON-safe: no Infinity
    json.dumps(diff.to_dict())


def test_diff_of_a_10m_parameter_tensor_is_vectorized():
    import time

    a = {"w": torch.randn(3200, 3200)}
    b = {"w": a["w"] * 1.01}
    start = time.perf_counter()
    row = diff_state_dicts(a, b).table.row(0, named=True)
    assert time.perf_counter() - start < 20.0  # a Python loop over 10M entries would take minutes; speed is benchmarked
    assert row["rel_l2"] == pytest.approx(0.01, rel=1e-3) and row["sign_flip_share"] == 0.0


def test_probe_counts_units_never_active_and_needs_the_architecture():
    net = _net()
    a = {k: v.clone() for k, v in net.state_dict().items()}
    b = {k: v.clone() for k, v in a.items()}
    b["0.weight"][:3] = 0.0  # three hidden units: constant input ...
    b["0.bias"][:3] = -1.0  # ... below zero, so their ReLU never fires
    probe = np.random.default_rng(0).normal(size=(256, 3)).astype(np.float32)
    row = diff_state_dicts(a, b, probe=probe, model=net).table.filter(pl.col("name") == "0.weight").row(0, named=True)
    assert row["inactive_units"] >= 3 and row["dead_units"] == 3
    assert torch.equal(net.state_dict()["0.weight"], a["0.weight"])  # the architecture given is not modified
    with pytest.raises(WorkbenchError, match="Hint: pass model=build_model"):
        diff_state_dicts(a, b, probe=probe)


# ---------------------------------------------------------------- the timeline
def test_benign_refreshes_raise_no_alarm(benign_timeline):
    tl = snapshot_timeline(open_case(benign_timeline))
    assert not tl.alarm and tl.first_bad is None and tl.bad_parameters == ()
    assert not tl.fallback and "median/MAD" in tl.statistic
    assert tl.table["compared_to"].to_list()[1:] == [f"s{k}" for k in range(9)]
    assert "no snapshot alarms" in str(tl)


def test_corrupt_snapshot_and_layer_rank_first(corrupt_timeline):
    tl = snapshot_timeline(open_case(corrupt_timeline))
    assert tl.first_bad == "s6"
    assert tl.bad_parameters[0] == "2.weight"
    assert tl.param_table("s6")["name"][0] == "2.weight"
    assert not tl.table.filter(pl.col("snapshot_id").is_in(["s1", "s2", "s3", "s4", "s5"]))["alarm"].any()
    # later snapshots inherit the corruption: compared with the last good one, they stay in alarm
    assert tl.table.filter(pl.col("snapshot_id") == "s7")["compared_to"][0] == "s5"
    json.dumps(tl.to_dict())
    with pytest.raises(WorkbenchError, match="did you mean 's6'"):
        tl.param_table("s66")


@pytest.mark.parametrize(("mode", "why"), [("nan", "NaN/Inf"), ("zero_rows", "all-zero rows")])
def test_hard_gates(tmp_path, mode, why):
    root = write_timeline_case(tmp_path / "case", n=6, bad=4, layer="0.weight", mode=mode)
    tl = snapshot_timeline(open_case(root))
    assert tl.first_bad == "s4" and tl.bad_parameters[0] == "0.weight"
    assert why in tl.table.filter(pl.col("snapshot_id") == "s4")["reason"][0]


def test_too_few_snapshots_fall_back_to_absolute_gates(small_case):
    tl = snapshot_timeline(open_case(small_case))  # two identical snapshots
    assert tl.fallback and "absolute gates" in tl.statistic and not tl.alarm


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_malicious_pt_is_refused_by_the_timeline_without_running(benign_timeline, tmp_path, legacy):
    import shutil

    root = Path(shutil.copytree(benign_timeline, tmp_path / "case"))
    case = open_case(root)  # the files are safe when the case is opened ...
    sentinel = tmp_path / "pwned"
    write_malicious_pt(root / "snapshots" / "s3.pt", sentinel, legacy)  # ... and swapped before the diff reads them
    with pytest.raises(SnapshotError, match="nothing was run"):
        snapshot_timeline(case)
    assert not sentinel.exists()
    # the payload is real: unpickling it without the guard runs it
    if legacy:
        with (root / "snapshots" / "s3.pt").open("rb") as fh:
            pickle.load(fh)  # unsafe on purpose: proves the payload would have run
        assert sentinel.exists()


# ---------------------------------------------------------------- the sample cases
@pytest.mark.parametrize("path", sample_cases(), ids=lambda p: p.name)
def test_sample_cases(path):
    truth = json.loads((path / "truth.json").read_text())
    tl = snapshot_timeline(open_case(path))
    if truth["details"]["incident"] == "snapshot_corrupt":
        assert tl.first_bad == truth["target"]
        assert tl.bad_parameters[0] == truth["layer"]
    elif truth["kind"] != "snapshot":
        assert not tl.alarm, str(tl)
