"""End-to-end ``workbench diagnose --json`` on large generated cases: wall time and peak RSS.

``python benchmarks/bench_diagnose.py [--rows 1000000 10000000]``. Each run is a fresh
process (model checks included); the cases are generated once with the sample
generator (partitioned) and cached under /tmp/workbench-bench. Targets: 1M rows ≤ 20 s,
10M rows ≤ 60 s with peak RSS ≤ 4 GB, on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_open import ensure_case  # noqa: E402


def run(case: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "diagnose", str(case), "--json", "-q"],
                          capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = json.loads(proc.stdout)
    top = out["root_causes"][0] if out["root_causes"] else None
    truth = json.loads((case / "truth.json").read_text())
    return {"case": case.name, "wall_s": round(wall, 1), "peak_rss_mb": round(max(peak, before) / 1024),
            "top": f"{top['kind']}:{top['target']}" if top else None, "truth": f"{truth['kind']}:{truth['target']}",
            "confidence": top["confidence"] if top else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()
    results = []
    for rows in args.rows:
        case = ensure_case(rows)
        result = {"rows": rows, **run(case)}
        print(json.dumps(result), flush=True)
        results.append(result)
    out = HERE / "results" / "diagnose.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
