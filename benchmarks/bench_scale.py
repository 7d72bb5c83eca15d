"""Scale: a diagnosis of a long log and of a wide log against a bare scan of the same files, in process and on Dask.

``python benchmarks/bench_scale.py --rows 10000000 [--features 24] [--dask 1 2] [--root /tmp/workbench-scale]``
``python benchmarks/bench_scale.py --rows 1000000 --features 1000 --dask``   (the wide log; no Dask run)

Writes (once, cached under ``--root``; never into the repository) a partitioned case of
``--rows`` rows over 72 hours, one parquet file per hour written hour by hour (never
held in memory): ``--features`` numeric features (float32), three slice columns, a daily
cycle, label delay in the last hours, and one injected incident with a known answer:
from hour 54 feature ``f_07`` loses 90% of its values, which the model scores as 0, so
normalized entropy rises (``truth.json``: ``feature`` / ``f_07``).

Then, each in a fresh process on the same files, alternating:

* **scan**: a bare streaming polars scan that reads every column and sums it;
* **in process**: ``workbench diagnose CASE --json`` (model-free: the case has no
  model.py), wall time and peak RSS;
* **dask N**: the same with ``--scheduler`` pointing at a ``LocalCluster`` of N worker
  processes, one thread each (``POLARS_MAX_THREADS=1`` per worker: a worker is one
  core), started here on loopback and stopped after; the peak RSS of the driver
  and of each worker.

Each run (with the machine's load from ``uptime`` before and after) is appended to
``benchmarks/results/scale_<rows>x<features>.json`` (``{"runs": [...]}``), so runs taken under
different loads or code stay side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak_rss import SOURCE as PEAK_RSS

HERE = Path(__file__).resolve().parent
HOURS = 72
ONSET = 54
BROKEN = 7
CATEGORIES = {"country": 6, "platform": 3, "ad_type": 4}


def build(rows: int, features: int, root: Path) -> Path:
    """Write ``root/predictions/hour=HH/part-0.parquet``, hour by hour, a workbench.toml and truth.json; return ``root``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if (root / "truth.json").exists():
        return root
    (root / "predictions").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    hours = np.arange(HOURS)
    volume = 1 + 0.45 * np.cos(2 * np.pi * (hours - 20) / 24)
    per_hour = rng.multinomial(rows, volume / volume.sum())
    weights = (rng.normal(0, 0.4, features) * (rng.random(features) < 0.4)).astype(np.float32)
    weights[BROKEN] = 0.9  # the feature that breaks, and that the click process leans on
    start = np.datetime64("2026-11-18T00:00:00", "us")
    names = [f"f_{j:02d}" if features < 100 else f"f_{j:04d}" for j in range(features)]
    for h in hours:
        n = int(per_hour[h])
        secs = np.sort(h * 3600.0 + rng.uniform(0, 3600, n))
        cycle = np.float32(np.cos(2 * np.pi * (h % 24 - 21) / 24))
        z = rng.standard_normal((n, features), dtype=np.float32)
        logit_true = -2.4 + 0.2 * cycle + z @ weights
        seen = z[:, BROKEN].copy()
        cols: dict[str, object] = {"ts": pa.array(start + (secs * 1e6).astype("timedelta64[us]"), pa.timestamp("us", "UTC"))}
        missing = rng.random((n, features), dtype=np.float32) < 0.02
        if h >= ONSET:  # coverage break: 90% of rows lose the value; the model scores them as 0
            broken = rng.random(n) < 0.9
            missing[:, BROKEN] |= broken
            seen = np.where(broken, np.float32(0), seen)
        logit_model = logit_true - weights[BROKEN] * (z[:, BROKEN] - seen)
        y = (rng.random(n) < 1 / (1 + np.exp(-(logit_true + 0.3 * rng.standard_normal(n))))).astype(np.float64)
        age = HOURS - secs / 3600
        y_mask = rng.random(n) < np.where(age < 5, np.clip(1.05 * np.exp(-age / 1.8), 0, 1), 0)
        cols["prediction"] = pa.array(1 / (1 + np.exp(-logit_model.astype(np.float64))))
        cols["label"] = pa.array(y, mask=y_mask)
        for j, name in enumerate(names):
            cols[name] = pa.array(z[:, j], mask=missing[:, j])
        for c, k in CATEGORIES.items():
            codes = pa.array(rng.integers(0, k, n).astype(np.int32))
            cols[c] = pa.DictionaryArray.from_arrays(codes, pa.array([f"{c}_{i}" for i in range(k)]))
        part = root / "predictions" / f"hour={h:02d}"
        part.mkdir(exist_ok=True)
        pq.write_table(pa.table(cols), part / "part-0.parquet", compression="zstd", row_group_size=500_000)
        del z, missing, cols
    (root / "workbench.toml").write_text(f'[case]\nname = "scale {rows:,} rows x {features} features"\n[columns]\n'
                                         f'features = ["f_*"]\nslices = {json.dumps(list(CATEGORIES))}\n')
    truth = {"kind": "feature", "target": names[BROKEN], "onset": f"2026-11-20T{ONSET - 48:02d}:00:00Z"}
    (root / "truth.json").write_text(json.dumps(truth))
    return root


SCAN = PEAK_RSS + """
import json, resource, sys, time
import polars as pl
t = time.perf_counter()
lf = pl.scan_parquet(sys.argv[1] + "/predictions/**/*.parquet", hive_partitioning=False)
s = lf.collect_schema()
exprs = [pl.col(c).cast(pl.String).str.len_bytes().sum() if s[c] in (pl.String, pl.Categorical) or isinstance(s[c], pl.Categorical)
         else pl.col(c).dt.epoch("us").sum() if isinstance(s[c], pl.Datetime) else pl.col(c).sum() for c in s]
lf.select(exprs).collect(engine="streaming")
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb()}))
"""

DIAGNOSE = PEAK_RSS + """
import json, resource, sys, time
t = time.perf_counter()
from workbench.rca.diagnosis import diagnose
steps = []
def say(m):
    steps.append((round(time.perf_counter() - t, 2), m))
d = diagnose(sys.argv[1], progress=say, scheduler=sys.argv[2] or None)
top = d.root_causes[0] if d.root_causes else None
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb(),
                  "top": f"{top.kind}:{top.target}" if top else None, "onset": d.anomaly["onset"],
                  "causes": [f"{c.kind}:{c.target}" for c in d.root_causes[:3]], "errors": [e["error"][:200] for e in d.errors],
                  "steps": steps, "json": d.to_dict()}))
"""


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def run(code: str, *args: str, timeout: float = 7200) -> dict:
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if out.returncode:
        return {"error": (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1], "wall_s": time.perf_counter() - t}
    return json.loads(out.stdout.strip().splitlines()[-1])


def dask_run(case: Path, workers: int) -> dict:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0",
                      env={"POLARS_MAX_THREADS": "1"}) as cluster, Client(cluster) as client:
        out = run(DIAGNOSE, str(case), cluster.scheduler_address)

        def rss() -> float:
            import resource
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        out["worker_peak_rss_mb"] = sorted(round(v) for v in client.run(rss).values())
    return out


def summary(r: dict) -> dict:
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items() if k not in ("json",)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--features", type=int, default=24)
    parser.add_argument("--root", type=Path, default=Path("/tmp/workbench-scale"))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--dask", type=int, nargs="*", default=[], help="worker counts to run the Dask path with (e.g. 1 2)")
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()
    case = args.root / f"scale_{args.rows}x{args.features}"
    t = time.perf_counter()
    build(args.rows, args.features, case)
    print(f"case {case} ready ({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
    if args.build_only:
        return
    truth = json.loads((case / "truth.json").read_text())
    result: dict = {"rows": args.rows, "features": args.features, "case": str(case), "truth": f"{truth['kind']}:{truth['target']}",
                    "load_before": uptime(), "scan": [], "in_process": [], "dask": {}}
    for _ in range(args.repeat):
        result["scan"].append(run(SCAN, str(case)))
        print("scan", summary(result["scan"][-1]), file=sys.stderr, flush=True)
        result["in_process"].append(run(DIAGNOSE, str(case), ""))
        print("in process", summary(result["in_process"][-1]), file=sys.stderr, flush=True)
    for n in args.dask:
        r = dask_run(case, n)
        result["dask"][str(n)] = r
        print(f"dask {n}", summary(r), file=sys.stderr, flush=True)
    result["load_after"] = uptime()
    best_scan = min(r["seconds"] for r in result["scan"] if "seconds" in r)
    ok = [r for r in result["in_process"] if "seconds" in r]
    if ok:
        best = min(ok, key=lambda r: r["seconds"])
        result["ratio_to_scan"] = round(best["seconds"] / best_scan, 2)
        result["true_cause_first"] = best["top"] == result["truth"]
        same = {n: r.get("json", {}).get("root_causes") == best["json"]["root_causes"] for n, r in result["dask"].items()}
        result["dask_same_answer"] = same
    if "1" in result["dask"] and "2" in result["dask"] and "seconds" in result["dask"]["1"] and "seconds" in result["dask"]["2"]:
        result["dask_speedup_2_over_1"] = round(result["dask"]["1"]["seconds"] / result["dask"]["2"]["seconds"], 2)
    for r in [*result["in_process"], *result["dask"].values()]:
        r.pop("json", None)
    out = HERE / "results" / f"scale_{args.rows}x{args.features}.json"
    out.parent.mkdir(exist_ok=True)
    runs = json.loads(out.read_text()).get("runs", []) if out.exists() else []
    result["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE,
                                      check=False).stdout.strip()
    out.write_text(json.dumps({"runs": [*runs, result]}, indent=2, default=str))
    print(json.dumps({k: v for k, v in result.items() if k not in ("in_process", "dask", "scan")}, default=str))


if __name__ == "__main__":
    main()
