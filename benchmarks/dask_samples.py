"""Every sample case diagnosed in process and on a Dask ``LocalCluster`` (2 workers, one thread each): same JSON?

``python benchmarks/dask_samples.py``

Each case's serving log is first written as a hive-partitioned directory (one folder per
day, 3,000-row row groups, as ``tests/data/test_scan.py`` does for its two Dask cases), so
the cluster has several parts per case. Prints one line per case and writes
``benchmarks/results/dask_samples.json``. ``make test`` runs two of these cases
(``test_the_diagnosis_on_a_dask_cluster_is_the_in_process_one``); all eleven take about two
minutes, too long for the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository root: tests.data.test_scan
CASES = HERE.parent / "sample_data" / "cases"


def main() -> None:
    from distributed import Client, LocalCluster

    from tests.data.test_scan import split_case  # the tests' own split, so both run the same layout
    from workbench import diagnose, open_case

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0",
                           env={"POLARS_MAX_THREADS": "1"})
    client = Client(cluster)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for src in sorted(p for p in CASES.iterdir() if p.is_dir()):
            case = open_case(split_case(src, Path(tmp) / src.name))
            t0 = time.perf_counter()
            here = diagnose(case, strict=True).to_dict()
            t1 = time.perf_counter()
            there = diagnose(case, strict=True, scheduler=client).to_dict()
            t2 = time.perf_counter()
            top = (here.get("root_causes") or [{}])[0].get("target")
            row = {"case": src.name, "same_json": here == there, "top": top, "in_process_s": round(t1 - t0, 1),
                   "dask_s": round(t2 - t1, 1), "differs": sorted(k for k in here if here[k] != there.get(k))}
            rows.append(row)
            print(row, flush=True)
    client.close()
    cluster.close()
    load = os.getloadavg()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    out = {"commit": commit, "load": [round(x, 2) for x in load], "cases": rows, "all_same": all(r["same_json"] for r in rows)}
    (HERE / "results" / "dask_samples.json").write_text(json.dumps(out, indent=1) + "\n")
    print("all the same" if out["all_same"] else "SOME DIFFER")


if __name__ == "__main__":
    main()
