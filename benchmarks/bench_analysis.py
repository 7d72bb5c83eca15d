"""How fast is the analysis layer next to a bare scan and a peer? ``python benchmarks/bench_analysis.py``.

Builds (once, cached under /tmp/workbench-bench) a partitioned serving log of N
rows x 50 numeric features + 5 categorical columns over 72 hours (daily cycle,
label delay, one feature losing coverage at hour 54 and NE rising with it), then
times, each in a fresh process on the same files (wall seconds, peak RSS):

- **floor**: a bare polars scan that reads every column and sums it;
- **full pass**: ``open_case`` + ``quality_series`` + ``detect_onset`` +
  ``feature_drift`` + ``find_slices`` (the analysis total excludes ``open_case``,
  which validates the log in its own pass);
- **peer** (``--peer PYTHON``, rows up to ``--peer-rows``): NannyML's univariate
  drift calculator on the same parquet files (reference = the day before the
  incident day, analysis = the incident day, 10 chunks), in a throwaway venv.

Floor and full pass alternate ``--repeat`` times (the machine may be shared; the
ratios within one run are what count). Results go to
``benchmarks/results/analysis_<N>.json``.
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
CACHE = Path(os.environ.get("WORKBENCH_BENCH_CACHE", "/tmp/workbench-bench"))
FEATURES, HOURS, ONSET, PARTS = 50, 72, 54, 12
CATEGORIES = {"country": 8, "platform": 3, "ad_type": 4, "device": 6, "region": 12}


def build(rows: int, root: Path) -> Path:
    """Write ``root/predictions/part-*.parquet`` and a workbench.toml; return ``root``."""
    import numpy as np
    import polars as pl

    if (root / "done").exists():
        return root
    (root / "predictions").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    hours = np.arange(HOURS)
    volume = 1 + 0.45 * np.cos(2 * np.pi * (hours - 20) / 24)
    per_hour = rng.multinomial(rows, volume / volume.sum())
    start = np.datetime64("2026-11-18T00:00:00", "us")
    families = ["gauss", "lognormal", "count", "rate", "binary"]
    weights = rng.normal(0, 0.4, FEATURES) * (rng.random(FEATURES) < 0.4)
    weights[7] = 0.9  # the feature that breaks, and that the click process leans on
    for part, hs in enumerate(np.array_split(hours, PARTS)):
        n = int(per_hour[hs].sum())
        hour = np.repeat(hs, per_hour[hs])
        secs = np.sort(hour * 3600.0 + rng.uniform(0, 3600, n))
        hour = (secs // 3600).astype(int)
        cycle = np.cos(2 * np.pi * (hour % 24 - 21) / 24)
        cols: dict[str, object] = {"ts": start + (secs * 1e6).astype("timedelta64[us]")}
        z = rng.standard_normal((FEATURES, n))
        logit_true = -2.4 + 0.2 * cycle
        logit_model = -2.4 + 0.2 * cycle
        feats = {}
        for j in range(FEATURES):
            fam = families[j % len(families)]
            x = {"gauss": z[j], "lognormal": np.exp(1 + 0.8 * z[j]), "count": np.floor(np.exp(2 + z[j])),
                 "rate": 1 / (1 + np.exp(-(-2 + 0.7 * z[j]))), "binary": (z[j] > 1.2).astype(float)}[fam]
            x = np.round(x, 3)
            std = z[j]
            logit_true = logit_true + weights[j] * std
            seen = std.copy()
            x = np.where(rng.random(n) < 0.01 + 0.03 * (j % 4) / 3, np.nan, x)
            if j == 7:  # coverage break from the onset: 90% of rows lose the value; the model scores them as 0
                broken = (hour >= ONSET) & (rng.random(n) < 0.9)
                x = np.where(broken, np.nan, x)
                seen = np.where(broken, 0.0, seen)
            logit_model = logit_model + weights[j] * seen
            feats[f"f_{j:02d}"] = x
        y = (rng.random(n) < 1 / (1 + np.exp(-(logit_true + 0.3 * rng.standard_normal(n))))).astype(float)
        age = HOURS - secs / 3600
        y = np.where(rng.random(n) < np.where(age < 5, np.clip(1.05 * np.exp(-age / 1.8), 0, 1), 0), np.nan, y)
        cols["prediction"] = 1 / (1 + np.exp(-logit_model))
        cols["label"] = y
        cols |= feats
        for c, k in CATEGORIES.items():
            cols[c] = np.array([f"{c}_{i}" for i in range(k)])[rng.integers(0, k, n)]
        frame = pl.DataFrame(cols).with_columns(pl.col("ts").dt.replace_time_zone("UTC"),
                                               pl.col("label", *feats).fill_nan(None))
        frame.write_parquet(root / "predictions" / f"part-{part:02d}.parquet", compression="zstd", row_group_size=250_000)
    (root / "workbench.toml").write_text(f'[case]\nname = "bench {rows:,} rows"\n[columns]\nfeatures = ["f_*"]\n'
                                         f'slices = {json.dumps(list(CATEGORIES))}\n')
    (root / "done").write_text("")
    return root


FLOOR = PEAK_RSS + """
import json, resource, sys, time
import polars as pl
t = time.perf_counter()
lf = pl.scan_parquet(sys.argv[1] + "/predictions/*.parquet")
s = lf.collect_schema()
exprs = [pl.col(c).str.len_bytes().sum() if s[c] == pl.String else pl.col(c).dt.epoch("us").sum() if s[c] == pl.Datetime
         else pl.col(c).sum() for c in s]
lf.select(exprs).collect(engine="streaming")
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb()}))
"""

PASS = PEAK_RSS + """
import json, resource, sys, time
t0 = time.perf_counter()
from workbench.case.loader import open_case
from workbench.data.quality import quality_series
from workbench.data.onset import detect_onset
from workbench.data.drift import feature_drift
from workbench.data.slices import find_slices
t = {}
t1 = time.perf_counter(); case = open_case(sys.argv[1]); t["open_case"] = time.perf_counter() - t1
t1 = time.perf_counter(); series = quality_series(case); t["quality_series"] = time.perf_counter() - t1
t1 = time.perf_counter(); onset = detect_onset(series); t["detect_onset"] = time.perf_counter() - t1
t1 = time.perf_counter(); drift = feature_drift(case, onset.baseline, onset.incident); t["feature_drift"] = time.perf_counter() - t1
t1 = time.perf_counter(); search = find_slices(case, onset.baseline, onset.incident); t["find_slices"] = time.perf_counter() - t1
print(json.dumps({"steps": t, "seconds": sum(v for k, v in t.items() if k != "open_case"),
                  "with_open": sum(t.values()), "import_s": t1 - t0 - sum(t.values()),
                  "peak_rss_mb": peak_rss_mb(),
                  "onset": onset.onset.isoformat() if onset.onset else None, "detected": onset.detected,
                  "top_feature": drift.table["feature"][0], "top_kind": drift.table["kind"][0],
                  "top_slice": search.top["slice"] if search.top else None}))
"""

PEER = PEAK_RSS + """
import json, os, resource, sys, time
os.environ.update(DO_NOT_TRACK="1", NML_DISABLE_USAGE_LOGGING="1")
t = time.perf_counter()
import pandas as pd
import nannyml as nml
import pyarrow.dataset as ds
frame = ds.dataset(sys.argv[1] + "/predictions", format="parquet").to_table().to_pandas()
frame["ts"] = frame["ts"].dt.tz_convert(None)
ref = frame[(frame.ts >= "2026-11-19T06:00:00") & (frame.ts < "2026-11-20T06:00:00")]
ana = frame[(frame.ts >= "2026-11-20T06:00:00")]
cols = [c for c in frame.columns if c.startswith("f_")] + CATEGORIES
calc = nml.UnivariateDriftCalculator(column_names=cols, timestamp_column_name="ts", chunk_number=10,
                                     continuous_methods=["kolmogorov_smirnov", "jensen_shannon"],
                                     categorical_methods=["chi2", "jensen_shannon"])
calc.fit(ref)
result = calc.calculate(ana)
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb(),
                  "rows": len(frame), "columns": len(cols)}))
""".replace("CATEGORIES", json.dumps(list(CATEGORIES)))


def run(code: str, arg: str, python: str = sys.executable, timeout: float = 1800) -> dict:
    env = dict(os.environ, DO_NOT_TRACK="1", NML_DISABLE_USAGE_LOGGING="1", PYTHONPATH=str(HERE.parent))
    try:
        out = subprocess.run([python, "-c", code, arg], capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish in {timeout:.0f} s"}
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def bench(rows: int, repeat: int, peer: str | None, peer_rows: int) -> dict:
    t = time.perf_counter()
    root = build(rows, CACHE / f"analysis_{rows}")
    print(f"[{rows:,}] data ready in {time.perf_counter() - t:.0f} s: {root}", file=sys.stderr)
    floors, passes = [], []
    for _ in range(repeat):
        floors.append(run(FLOOR, str(root)))
        passes.append(run(PASS, str(root)))
        print(f"[{rows:,}] floor {floors[-1].get('seconds', floors[-1])} s, pass {passes[-1].get('seconds', passes[-1])} s",
              file=sys.stderr)
    ok = [p for p in passes if "seconds" in p]
    best_floor = min(f["seconds"] for f in floors)
    best = min(ok, key=lambda p: p["seconds"])
    result = {
        "rows": rows, "features": FEATURES, "categorical": len(CATEGORIES),
        "floor_s": [round(f["seconds"], 2) for f in floors], "pass_s": [round(p["seconds"], 2) for p in ok],
        "pass_with_open_s": [round(p["with_open"], 2) for p in ok],
        "steps_s_best": {k: round(v, 2) for k, v in best["steps"].items()},
        "ratio_to_floor": round(best["seconds"] / best_floor, 2),
        "ratio_to_floor_median": round(_median([p["seconds"] for p in ok]) / _median([f["seconds"] for f in floors]), 2),
        "peak_rss_mb": round(max(p["peak_rss_mb"] for p in ok)), "floor_peak_rss_mb": round(max(f["peak_rss_mb"] for f in floors)),
        "found": {k: best[k] for k in ("detected", "onset", "top_feature", "top_kind", "top_slice")},
    }
    if peer and rows <= peer_rows:
        print(f"[{rows:,}] peer ...", file=sys.stderr)
        p = run(PEER, str(root), python=peer, timeout=1800)
        result["peer"] = {"tool": "nannyml UnivariateDriftCalculator (KS + JS, chi2 + JS, 10 chunks)", **p}
        if "seconds" in p:
            result["peer_speedup"] = round(p["seconds"] / best["seconds"], 1)
    out = HERE / "results" / f"analysis_{rows}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peer", help="python of a throwaway venv with nannyml installed")
    parser.add_argument("--peer-rows", type=int, default=1_000_000, help="run the peer only up to this many rows")
    args = parser.parse_args()
    for rows in args.rows:
        print(json.dumps(bench(rows, args.repeat, args.peer, args.peer_rows)))


if __name__ == "__main__":
    main()
