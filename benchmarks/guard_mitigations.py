"""Measure the mitigations and the guard on the proving ground's development split (never the held-back one).

``python benchmarks/guard_mitigations.py --controls-per-mode 10 --incident-seeds 1 --max-rows 100000``

* **Mitigations** (dev incidents): each case is diagnosed (``workbench.diagnose``) and scored
  with ``proving_ground.score``: the share whose top cause's first mitigation is predicted to
  recover at least half of the regression (``mitigation_recovers``), and the error of its
  ``predicted.value`` against the generator's counterfactual (the same metric, the model's
  quality on the incident window without the incident).
* **Guard trip rate** (dev incidents): ``workbench.guard`` on the one-day window in which the
  onset falls (the window a daily scheduler would guard first after the onset: it starts a
  seeded random 0-23 hours before the onset), against the day before. Trips, and which
  monitors tripped.
* **Guard false-alarm rate** (dev controls: quiet, organic drift, traffic-mix drift): the guard
  on the newest day (``--window latest``) and on the ``--control-windows`` - 1 days before it;
  a trip is a false alarm. Reported per run and per case.
* **Audit** (``--audit-seeds N``, dev snapshot cases, which always carry a model): the
  data-dependency audit on the rows before the onset against ``truth.json``: the share of the
  features the generator gave zero weight found as removal candidates, the precision of the
  candidates, the bundles named exactly, and the bundle carriers the labels single out.

Cases are cached under ``--out`` (default ``/tmp/proving_ground_issue16/dev``) and reused while
the scenario and the generator version are unchanged. Writes ``benchmarks/results/guard_mitigations.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))


def _case(sc_dict: dict, cache: Path) -> Path:
    from proving_ground import Scenario, generate
    from proving_ground.generate import GENERATOR_VERSION

    sc = Scenario.from_dict(sc_dict)
    path = cache / sc.name
    truth = path / "truth.json"
    if truth.exists():
        t = json.loads(truth.read_text())
        if t.get("scenario_key") == sc.key() and t.get("generator_version") == GENERATOR_VERSION:
            return path
    shutil.rmtree(path, ignore_errors=True)
    tmp = cache / f".{sc.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    generate(sc, tmp)
    tmp.rename(path)
    return path


_Z = re.compile(r"z ([+-]?\d+(?:\.\d+)?)|(\d+(?:\.\d+)?) SE")


def _rows(report) -> list[dict]:
    """Every monitor row, with the z its detail states (for re-thresholding offline)."""
    out = []
    for m in report.monitors:
        d = m.to_dict()
        hit = _Z.search(m.detail)
        d["z"] = float(hit.group(1) or hit.group(2)) if hit else None
        out.append(d)
    return out


def _guard(case, window) -> dict:
    from workbench import guard

    t = time.perf_counter()
    report = guard(case, window)
    # every trip, and the label-based monitors (one row each): enough to re-threshold z and the changes offline
    kept = [r for r in _rows(report) if r["status"] == "trip" or r["monitor"] in ("label_drift", "calibration", "quality")]
    return {"window": report.to_dict()["window"], "tripped": report.tripped,
            "trips": [f"{m.monitor}:{m.target}" for m in report.trips], "monitors": kept,
            "seconds": round(time.perf_counter() - t, 2)}


def run_one(sc_dict: dict, cache: str, control_windows: int) -> dict:
    """Worker: generate (or reuse), then diagnose + score + guard an incident, or guard a control. Never raises."""
    from proving_ground import score
    from proving_ground.score import load_truth
    from workbench import Window, diagnose, open_case

    rec: dict = {"scenario": f"{sc_dict['family']}/{sc_dict['mode']}/{sc_dict['seed']}", "failure": None}
    try:
        path = _case(sc_dict, Path(cache))
        truth = load_truth(path)
        case = open_case(path)
        rec.update(family=truth["family"], mode=truth["mode"], rows=truth["rows"], onset=truth.get("onset"),
                   detectable=truth.get("detectable"), too_sparse=truth.get("too_sparse"))
        if truth["kind"] in (None, "none"):
            rec["control"] = True
            end = case.end
            rec["guard"] = [_guard(case, Window(end - timedelta(days=k + 1), end - timedelta(days=k)))
                            for k in range(control_windows) if end - timedelta(days=k + 2) >= case.start]
            return rec
        rec["control"] = False
        t = time.perf_counter()
        answer = json.loads(json.dumps(diagnose(case).to_dict(), default=str))
        rec["diagnose_seconds"] = round(time.perf_counter() - t, 2)
        rec["score"] = {k: v for k, v in score(path, answer, truth=truth).items()
                        if k in ("incident", "detected", "first", "top", "mitigation_recovers", "mitigation_metric",
                                 "mitigation_value_error")}
        top = (answer.get("root_causes") or [{}])[0]
        rec["top_mitigations"] = top.get("mitigations")
        rec["counterfactual"] = truth.get("counterfactual")
        rec["good_snapshot"] = truth.get("good_snapshot")
        onset = datetime.fromisoformat(truth["onset"].replace("Z", "+00:00"))
        lead = timedelta(hours=int(sc_dict["seed"] * 7919 + len(sc_dict["mode"]) * 31) % 24)  # seeded position in the day
        start = onset.replace(minute=0, second=0, microsecond=0) - lead
        start = min(max(start, case.start + timedelta(days=1)), case.end - timedelta(days=1))
        rec["guard"] = [_guard(case, Window(start, start + timedelta(days=1)))]
        rec["onset_in_window"] = start <= onset < start + timedelta(days=1)
    except Exception as exc:  # a bug: recorded, the run goes on
        rec["failure"] = f"{type(exc).__name__}: {exc}"[:600]
        rec["traceback"] = traceback.format_exc(limit=6)[-3000:]
    return rec


def audit_one(sc_dict: dict, cache: str) -> dict:
    """Worker: the data-dependency audit of a snapshot case's model on the rows before the onset, against truth.json."""
    from workbench import Window, audit_dependencies, open_case

    rec: dict = {"scenario": f"{sc_dict['family']}/{sc_dict['mode']}/{sc_dict['seed']}", "failure": None, "audit": True}
    try:
        path = _case(sc_dict, Path(cache))
        truth = json.loads((path / "truth.json").read_text())
        case = open_case(path)
        onset = datetime.fromisoformat(truth["onset"].replace("Z", "+00:00"))
        audit = audit_dependencies(case, Window(case.start, onset))
        zero, cand = set(truth["zero_weight_features"]), set(audit.candidates)
        in_bundle = {f for b in truth["bundles"] for f in b["features"]}
        want = {frozenset(b["features"]): b["signal"] for b in truth["bundles"]}
        rec.update(features=audit.table.height, zero=len(zero), found=len(zero & cand), missed=sorted(zero - cand),
                   missed_outside_bundles=sorted((zero - cand) - in_bundle), extra=sorted(cand - zero),
                   bundles_true=len(want), bundles_exact={frozenset(b.features) for b in audit.bundles} == set(want),
                   carriers_identified=sum(b.identified for b in audit.bundles),
                   carriers_right=sum(b.identified and want.get(frozenset(b.features)) == b.signal for b in audit.bundles),
                   method=audit.method)
    except Exception as exc:
        rec["failure"] = f"{type(exc).__name__}: {exc}"[:600]
    return rec


def summarize_audit(rows: list[dict]) -> dict:
    ok = [r for r in rows if r.get("audit") and not r.get("failure")]
    zero, found = sum(r["zero"] for r in ok), sum(r["found"] for r in ok)
    cand = found + sum(len(r["extra"]) for r in ok)
    return {"audit_cases": len(ok), "audit_failures": sum(1 for r in rows if r.get("audit") and r.get("failure")),
            "zero_weight_features": zero, "zero_weight_found": found, "zero_weight_recall": found / zero if zero else None,
            "zero_weight_missed_outside_bundles": sum(len(r["missed_outside_bundles"]) for r in ok),
            "candidates": cand, "candidate_precision": found / cand if cand else None,
            "bundles": sum(r["bundles_true"] for r in ok),
            "cases_with_bundles_named_exactly": sum(r["bundles_exact"] for r in ok if r["bundles_true"]),
            "cases_with_bundles": sum(1 for r in ok if r["bundles_true"]),
            "cases_with_a_false_bundle": sum(1 for r in ok if not r["bundles_true"] and not r["bundles_exact"]),
            "carriers_identified": sum(r["carriers_identified"] for r in ok), "carriers_right": sum(r["carriers_right"] for r in ok)}


def summarize(rows: list[dict]) -> dict:
    inc = [r for r in rows if r.get("control") is False and r.get("detectable") is not False and not r.get("too_sparse")]
    ctl = [r for r in rows if r.get("control")]
    scored = [r for r in inc if r.get("score", {}).get("mitigation_recovers") is not None]
    errors = [abs(r["score"]["mitigation_value_error"]) for r in inc
              if r.get("score", {}).get("mitigation_value_error") is not None]
    in_window = [r for r in inc if r.get("onset_in_window") and r.get("guard")]
    runs = [g for r in ctl for g in r.get("guard", [])]
    latest = [r["guard"][0] for r in ctl if r.get("guard")]
    per_monitor: dict[str, int] = {}
    for g in runs:
        for m in {t.split(":")[0] for t in g["trips"]}:
            per_monitor[m] = per_monitor.get(m, 0) + 1
    return {
        "incidents": len(inc), "failures": sum(1 for r in rows if r.get("failure")),
        "mitigation_scored": len(scored),
        "mitigation_recovers": (sum(bool(r["score"]["mitigation_recovers"]) for r in scored) / len(scored)) if scored else None,
        "mitigation_recovers_over_all_incidents": (sum(bool(r.get("score", {}).get("mitigation_recovers")) for r in inc) / len(inc))
        if inc else None,
        "mitigation_value_abs_error_median": statistics.median(errors) if errors else None,
        "mitigation_value_abs_error_p90": sorted(errors)[int(0.9 * (len(errors) - 1))] if errors else None,
        "guard_incidents": len(in_window),
        "guard_trip_rate": (sum(r["guard"][0]["tripped"] for r in in_window) / len(in_window)) if in_window else None,
        "controls": len(ctl), "control_runs": len(runs),
        "false_alarm_rate_per_run": (sum(g["tripped"] for g in runs) / len(runs)) if runs else None,
        "false_alarm_rate_latest_window": (sum(g["tripped"] for g in latest) / len(latest)) if latest else None,
        "false_alarms_by_monitor": per_monitor,
    }


def main(argv: list[str] | None = None) -> int:
    from proving_ground import suite
    from proving_ground.split import modes_for

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--controls-per-mode", type=int, default=10)
    ap.add_argument("--control-windows", type=int, default=2, help="daily windows guarded per control (latest first)")
    ap.add_argument("--incident-seeds", type=int, default=1, help="seeds per incident mode")
    ap.add_argument("--first-seed", type=int, default=0, help="first dev seed of each mode (fresh controls: e.g. 10)")
    ap.add_argument("--families", nargs="*", default=None, help="incident families (default: every one but control, sparse)")
    ap.add_argument("--no-incidents", action="store_true")
    ap.add_argument("--no-controls", action="store_true")
    ap.add_argument("--audit-seeds", type=int, default=0, help="seeds per snapshot mode audited against truth.json")
    ap.add_argument("--max-rows", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="/tmp/proving_ground_issue16/dev")
    ap.add_argument("--results", default=str(HERE / "results" / "guard_mitigations.json"))
    args = ap.parse_args(argv)
    cache = Path(args.out)
    cache.mkdir(parents=True, exist_ok=True)
    families = args.families or ["feature", "upstream", "snapshot", "label", "calibration", "slice", "shift", "multi"]
    scenarios = []
    if not args.no_controls:
        scenarios += suite("dev", args.controls_per_mode, families=["control"], max_rows=args.max_rows, first_seed=args.first_seed)
    if not args.no_incidents:
        scenarios += suite("dev", args.incident_seeds, families=families, max_rows=args.max_rows, first_seed=args.first_seed)
    t0 = time.perf_counter()
    rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(run_one, sc.to_dict(), str(cache), args.control_windows) for sc in scenarios]
        if args.audit_seeds:
            futures += [pool.submit(audit_one, sc.to_dict(), str(cache)) for sc in
                        suite("dev", args.audit_seeds, families=["snapshot"], max_rows=args.max_rows, first_seed=args.first_seed)]
        for fut in as_completed(futures):
            rec = fut.result()
            rows.append(rec)
            if rec.get("audit"):
                print(f"[{time.perf_counter() - t0:6.0f}s] audit {rec['scenario']}: "
                      + (f"FAILED {rec['failure'][:200]}" if rec["failure"] else
                         f"zero-weight {rec['found']}/{rec['zero']}, extra {len(rec['extra'])}, bundles exact {rec['bundles_exact']}"),
                      flush=True)
                continue
            g = rec.get("guard") or [{}]
            print(f"[{time.perf_counter() - t0:6.0f}s] {rec['scenario']}: "
                  + (f"FAILED {rec['failure'][:200]}" if rec["failure"] else
                     f"guard {'TRIP ' + ','.join(g[0].get('trips', [])[:4]) if g[0].get('tripped') else 'pass'}"
                     + (f"; mitigation {rec['score'].get('mitigation_recovers')} "
                        f"err {rec['score'].get('mitigation_value_error')}" if rec.get("score") else "")), flush=True)
    rows.sort(key=lambda r: r["scenario"])
    meta = {"split": "dev", "max_rows": args.max_rows, "controls_per_mode": args.controls_per_mode, "first_seed": args.first_seed,
            "control_windows": args.control_windows, "incident_seeds": args.incident_seeds,
            "control_modes": list(modes_for("control", "dev")), "seconds": round(time.perf_counter() - t0),
            "command": "python benchmarks/guard_mitigations.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    out = {"meta": meta, "summary": summarize([r for r in rows if not r.get("audit")]) | summarize_audit(rows), "cases": rows}
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(out, indent=1, default=str))
    print(json.dumps(out["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
