"""How fast are the model-side checks? ``python benchmarks/bench_model.py``.

Two timings, each the median of ``--repeat`` runs in this process on ``--threads``
torch threads (the targets assume a 2-core machine):

- **isolation**: :func:`workbench.model.isolation.isolate_features` for the 24 features of
  the sample CTR model on a baseline and an incident window of 50,000 rows each
  (a ``feature_scale_bug`` case generated once with 420,000 rows over 72 h, cached
  under /tmp/workbench-bench), with the model (SHAP + swap) and model-free
  (surrogate + TreeSHAP), at the default ``sample=20_000`` and at ``sample=50_000``
  (every row). Target: <= 10 s.
- **diff**: two snapshots of a 10.5M-parameter MLP (1024-2048-2048-2048-1) written
  as safetensors; load both with :func:`workbench.case.snapshots.load_state_dict`
  and run :func:`workbench.model.diff.diff_state_dicts`. Target: <= 2 s.

The machine may be shared: the 1-minute load average is recorded next to each
figure. Results go to ``benchmarks/results/model.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("WORKBENCH_BENCH_CACHE", "/tmp/workbench-bench"))
WINDOW_ROWS = 50_000


def _timed(fn, repeat: int) -> tuple[float, list[float], object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, out


def isolation_case() -> Path:
    """A feature_scale_bug case with >= 50,000 rows on each side of the onset (>= 11 h after it)."""
    from workbench.sample import generate_case

    root = CACHE / "model_isolation_case"
    if not (root / "truth.json").exists():
        generate_case("feature_scale_bug", root, seed=1, rows=420_000, progress=lambda m: print(f"  {m}", file=sys.stderr))
    return root


def bench_isolation(repeat: int) -> list[dict]:
    import polars as pl

    from workbench.case.columns import TS
    from workbench.case.loader import open_case
    from workbench.model.isolation import isolate_features
    from workbench.windows import Window

    root = isolation_case()
    case = open_case(root)
    truth = json.loads((root / "truth.json").read_text())
    onset = datetime.fromisoformat(truth["onset"].replace("Z", "+00:00"))
    base, inc = Window(onset - timedelta(hours=24), onset), Window(onset, case.end)
    counts = [case.predictions.filter(w.contains(TS)).select(pl.len()).collect().item() for w in (base, inc)]
    # trim both windows to exactly WINDOW_ROWS rows by moving their outer edges
    edges = []
    for w, forward in ((base, False), (inc, True)):
        ts = case.predictions.filter(w.contains(TS)).select(TS).collect()[TS].sort()
        edges.append(Window(ts[-WINDOW_ROWS], w.end) if not forward else Window(w.start, ts[WINDOW_ROWS - 1] + timedelta(microseconds=1)))
    base, inc = edges
    rows = []
    for method in ("model", "surrogate"):
        for sample in (20_000, WINDOW_ROWS):
            isolate_features(case, base, inc, method=method, sample=2_000)  # warm-up: imports, model build
            load = os.getloadavg()[0]
            median, times, iso = _timed(lambda m=method, s=sample: isolate_features(case, base, inc, method=m, sample=s), repeat)
            rows.append({"check": "isolation", "method": iso.method, "features": len(case.features), "window_rows": WINDOW_ROWS,
                         "sample": sample, "seconds": round(median, 3), "runs": [round(t, 3) for t in times],
                         "target_seconds": 10.0, "ok": median <= 10.0, "top": iso.top, "truth": truth["target"],
                         "load_avg_1m": round(load, 2), "window_rows_available": counts})
            print(f"isolation {iso.method:<18} sample {sample:>6,}: {median:6.2f} s (runs {[round(t, 2) for t in times]}, "
                  f"top {iso.top}, load {load:.1f})", file=sys.stderr)
    return rows


def bench_diff(repeat: int) -> list[dict]:
    import torch
    from safetensors.torch import save_file

    from workbench.case.snapshots import load_state_dict
    from workbench.model.diff import diff_state_dicts

    folder = CACHE / "model_diff"
    folder.mkdir(parents=True, exist_ok=True)
    a_path, b_path = folder / "a.safetensors", folder / "b.safetensors"
    if not b_path.exists():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(1024, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 2048), torch.nn.ReLU(),
                                  torch.nn.Linear(2048, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 1))
        a = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
        b = {k: v + 0.01 * v.std() * torch.randn_like(v) if v.numel() > 1 else v.clone() for k, v in a.items()}
        b["2.weight"] = b["2.weight"] * 2.5  # one exploded layer
        save_file(a, str(a_path))
        save_file(b, str(b_path))
    params = sum(t.numel() for t in load_state_dict(a_path).values())

    def load_and_diff():
        return diff_state_dicts(load_state_dict(a_path), load_state_dict(b_path))

    sa, sb = load_state_dict(a_path), load_state_dict(b_path)
    diff_state_dicts(sa, sb)  # warm-up
    load = os.getloadavg()[0]
    diff_only, diff_times, diff = _timed(lambda: diff_state_dicts(sa, sb), repeat)
    total, total_times, _ = _timed(load_and_diff, repeat)
    top = diff.table.sort("rel_l2", descending=True)["name"][0]
    print(f"diff of two {params / 1e6:.1f}M-parameter snapshots: {diff_only:.3f} s diff, {total:.3f} s load + diff "
          f"(top {top}, load {load:.1f})", file=sys.stderr)
    return [{"check": "snapshot_diff", "parameters": params, "seconds_diff": round(diff_only, 3),
             "seconds_load_and_diff": round(total, 3), "runs_diff": [round(t, 3) for t in diff_times],
             "runs_load_and_diff": [round(t, 3) for t in total_times], "target_seconds": 2.0, "ok": total <= 2.0,
             "top_parameter": top, "load_avg_1m": round(load, 2)}]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the targets assume 2 cores)")
    parser.add_argument("--only", choices=("isolation", "diff"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    results = []
    if args.only in (None, "diff"):
        results += bench_diff(args.repeat)
    if args.only in (None, "isolation"):
        results += bench_isolation(args.repeat)
    out = {"when": datetime.now().astimezone().isoformat(timespec="seconds"), "machine": platform.machine(),
           "cpus": os.cpu_count(), "torch_threads": args.threads, "python": platform.python_version(), "results": results}
    path = HERE / "results" / "model.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
