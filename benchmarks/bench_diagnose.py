"""End-to-end ``workbench diagnose --json`` on large generated cases: wall time and peak RSS.

``python benchmarks/bench_diagnose.py [--rows 1000000 10000000]``. Each run is a fresh
process (model checks included); the cases are generated once with the sample
generator (partitioned) and cached under /tmp/workbench-bench. Targets: 1M rows ≤ 20 s,
10M rows ≤ 60 s with peak RSS ≤ 4 GB, on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_open import ensure_case  # noqa: E402
from peak_rss import SOURCE as PEAK_RSS  # noqa: E402

#: ``workbench diagnose CASE --json -q`` as the CLI runs it, then the process's own peak RSS on stderr (the
#: children's ru_maxrss would hold this benchmark's own high-water mark: ``peak_rss``).
CLI = PEAK_RSS + """
import runpy, sys
sys.argv = ["workbench", "diagnose", sys.argv[1], "--json", "-q"]
try:
    runpy.run_module("workbench.cli", run_name="__main__")
finally:
    print(f"peak_rss_mb={peak_rss_mb():.0f}", file=sys.stderr)
"""


def run(case: Path) -> dict:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CLI, str(case)], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    peak = int(proc.stderr.strip().splitlines()[-1].removeprefix("peak_rss_mb="))
    out = json.loads(proc.stdout)
    top = out["root_causes"][0] if out["root_causes"] else None
    truth = json.loads((case / "truth.json").read_text())
    return {"case": case.name, "wall_s": round(wall, 1), "peak_rss_mb": peak,
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
