"""How often does the root-cause engine put the true cause first on fresh seeds?

``python benchmarks/rca_seeds.py --seeds 10 11 12 13 14``: generates every incident
for each seed (never the committed seeds' cases), diagnoses it and records the top
cause, its confidence and whether it matches ``truth.json``. Prints accuracy per
incident and accuracy by confidence band (does higher confidence mean more often
right?), and writes ``benchmarks/results/rca_seeds_<incidents>_<first>_<last>.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from workbench.rca import diagnose
from workbench.sample import INCIDENTS, generate_case

HERE = Path(__file__).resolve().parent


def one(incident: str, seed: int, root: Path) -> dict:
    case = generate_case(incident, root / f"{incident}_{seed}", seed=seed)
    truth = json.loads((case / "truth.json").read_text())
    t = time.perf_counter()
    d = diagnose(case)
    top = d.top
    if truth["kind"] == "none":
        ok = top is None and not d.anomaly["detected"]
    else:
        ok = top is not None and (top.kind, top.target) == (truth["kind"], truth["target"])
        if ok and truth.get("slice"):
            ok = top.slice == truth["slice"]
    onset_err = None
    if truth["onset"] and d.anomaly["onset"]:
        from datetime import datetime

        onset_err = (datetime.fromisoformat(d.anomaly["onset"].replace("Z", "+00:00"))
                     - datetime.fromisoformat(truth["onset"].replace("Z", "+00:00"))).total_seconds() / 3600
    return {"incident": incident, "seed": seed, "ok": ok, "truth": f"{truth['kind']}:{truth['target']}",
            "top": f"{top.kind}:{top.target}" if top else None, "slice": top.slice if top else None,
            "confidence": round(top.confidence, 3) if top else None, "detected": d.anomaly["detected"],
            "onset_error_h": onset_err, "seconds": round(time.perf_counter() - t, 1),
            "runner_up": f"{d.root_causes[1].kind}:{d.root_causes[1].target}" if len(d.root_causes) > 1 else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[10, 11, 12])
    parser.add_argument("--incidents", nargs="+", default=list(INCIDENTS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for incident in args.incidents:
                row = one(incident, seed, Path(tmp))
                rows.append(row)
                print(json.dumps(row), flush=True)
    by_incident: dict[str, list[bool]] = {}
    for r in rows:
        by_incident.setdefault(r["incident"], []).append(r["ok"])
    print("\naccuracy per incident:")
    for name, oks in sorted(by_incident.items()):
        print(f"  {name:<24} {sum(oks)}/{len(oks)}")
    bands = [(0.0, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.01)]
    print("accuracy by confidence of the top cause:")
    for lo, hi in bands:
        sel = [r["ok"] for r in rows if r["confidence"] is not None and lo <= r["confidence"] < hi]
        if sel:
            print(f"  [{lo:.1f}, {hi:.1f}): {sum(sel)}/{len(sel)} right")
    total = sum(r["ok"] for r in rows)
    print(f"overall: {total}/{len(rows)}")
    name = "_".join(args.incidents) if len(args.incidents) < len(INCIDENTS) else "all"
    out = HERE / "results" / f"rca_seeds_{name}_{min(args.seeds)}_{max(args.seeds)}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
