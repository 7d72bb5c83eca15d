"""False alarms and hits over many generated seeds: ``python benchmarks/onset_seeds.py --seeds 10 20``.

Generates (once, cached under /tmp/workbench-bench/seeds) sample cases for seeds
``first..last-1`` of every incident with ``workbench.sample`` at its default size,
then runs the analysis the root-cause engine runs (onset, feature ranking, slice
search) and reports, per incident: how often NE alarmed, the onset error, the
rank of the injected feature(s) and the top slice. On ``control`` every alarm is
a false alarm. Results go to ``benchmarks/results/onset_seeds.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path("/tmp/workbench-bench/seeds")


def _one(job: tuple[str, int]) -> dict:
    from workbench.case.loader import open_case
    from workbench.data.drift import feature_drift
    from workbench.data.onset import detect_onsets
    from workbench.data.slices import find_slices
    from workbench.sample import generate_case

    incident, seed = job
    path = CACHE / f"{incident}_{seed}"
    if not (path / "truth.json").exists():
        generate_case(incident, path, seed=seed)
    truth = json.loads((path / "truth.json").read_text())
    case = open_case(path)
    onsets = detect_onsets(case)
    primary = onsets.primary
    true = datetime.fromisoformat(truth["onset"].replace("Z", "+00:00")) if truth["onset"] else None
    out = {"incident": incident, "seed": seed, "ne_alarm": primary.detected, "any_alarm": onsets.detected,
           "severity": round(primary.severity, 2), "threshold": round(primary.threshold, 2),
           "onset_error_h": (primary.onset - true) / timedelta(hours=1) if primary.detected and true else None,
           "shift_alarms": [m for m, o in onsets.by_metric.items() if o.detected]}
    drift = feature_drift(case, primary.baseline, primary.incident)
    targets = truth["details"]["features"]
    ranks = {f: drift.table["feature"].to_list().index(f) + 1 for f in targets if f in drift.table["feature"].to_list()}
    out["feature_rank_worst"] = max(ranks.values()) if ranks else None
    out["features_injected"] = len(targets)
    out["broken_features"] = drift.broken.height
    organic = [f for f in truth["details"].get("organic_drift", []) if f not in targets]  # an upstream break may feed one
    out["organic_broken"] = int(drift.broken.filter(drift.broken["feature"].is_in(organic)).height)
    if case.slices:
        search = find_slices(case, primary.baseline, primary.incident)
        out["top_slice"] = search.top["slice"] if search.top else None
        out["confined"] = search.confined
    out["truth_slice"] = truth.get("slice") or (truth["target"] if truth["kind"] == "slice" else None)
    return out


def summarize(rows: list[dict]) -> dict:
    by = defaultdict(list)
    for r in rows:
        by[r["incident"]].append(r)
    out = {}
    for incident, rs in sorted(by.items()):
        errs = [r["onset_error_h"] for r in rs if r["onset_error_h"] is not None]
        s = {"seeds": len(rs), "ne_alarms": sum(r["ne_alarm"] for r in rs),
             "anomaly_alarms": sum(r["ne_alarm"] or "calibration_ratio" in r["shift_alarms"] for r in rs),
             "within_2h": sum(abs(e) <= 2 for e in errs), "organic_flagged": sum(r["organic_broken"] for r in rs)}
        if incident == "control":
            s["false_alarm_rate_ne"] = s["ne_alarms"] / len(rs)
            s["any_quality_alarm"] = sum(r["any_alarm"] for r in rs)
            s["broken_features"] = sum(r["broken_features"] for r in rs)
        if any(r["feature_rank_worst"] for r in rs):  # top 3, or top k when k > 3 features were injected together
            s["features_in_top3"] = sum(1 for r in rs if r["feature_rank_worst"]
                                        and r["feature_rank_worst"] <= max(3, r.get("features_injected", 1)))
        if any(r["truth_slice"] for r in rs):
            s["slice_first"] = sum(1 for r in rs if r.get("top_slice") == r["truth_slice"])
        out[incident] = s
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs=2, default=[10, 20], metavar=("FIRST", "LAST"))
    parser.add_argument("--incidents", nargs="*", default=None)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    from workbench.sample import INCIDENTS

    incidents = args.incidents or list(INCIDENTS)
    jobs = [(i, s) for s in range(*args.seeds) for i in incidents]
    rows = []
    with ProcessPoolExecutor(args.jobs) as ex:
        for r in ex.map(_one, jobs):
            rows.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    result = {"seeds": args.seeds, "summary": summarize(rows), "cases": rows}
    out = HERE / "results" / f"onset_seeds_{'_'.join(incidents) if args.incidents else 'all'}_{args.seeds[0]}_{args.seeds[1]}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
