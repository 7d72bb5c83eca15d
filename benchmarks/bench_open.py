"""How fast and how lean is opening a case? ``python benchmarks/bench_open.py [--rows N]``.

Generates (once, cached) a partitioned sample case of N rows with the sample
generator, then opens it in a fresh process and reports wall time and peak RSS of
``open_case`` (the target for 10M rows: under 1 s and 500 MB; it is lazy).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peak_rss import SOURCE as PEAK_RSS

HERE = Path(__file__).resolve().parent
CACHE = Path("/tmp/workbench-bench")

PROBE = PEAK_RSS + """
import json, sys, time
t0 = time.perf_counter()
from workbench.case.loader import open_case
t1 = time.perf_counter()
case = open_case(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "open_s": t2 - t1, "rows": case.rows,
                  "peak_rss_mb": peak_rss_mb()}))
"""


def ensure_case(rows: int, incident: str = "upstream_break") -> Path:
    from workbench.sample import generate_case

    path = CACHE / f"{incident}_{rows}"
    if not (path / "truth.json").exists():
        t = time.perf_counter()
        generate_case(incident, path, seed=0, rows=rows, partitioned=True,
                      progress=lambda m: print(f"  generate: {m}", file=sys.stderr))
        print(f"generated {rows:,} rows in {time.perf_counter() - t:.0f} s -> {path}", file=sys.stderr)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    case = ensure_case(args.rows)
    runs = [json.loads(subprocess.run([sys.executable, "-c", PROBE, str(case)], capture_output=True, text=True,
                                      check=True).stdout) for _ in range(args.repeat)]
    best = min(runs, key=lambda r: r["open_s"])
    result = {"rows": best["rows"], "open_s": [round(r["open_s"], 3) for r in runs],
              "peak_rss_mb": [round(r["peak_rss_mb"]) for r in runs], "import_s": round(best["import_s"], 3)}
    out = HERE / "results" / f"open_{args.rows}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
