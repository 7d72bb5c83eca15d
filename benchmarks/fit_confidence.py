"""Fit the confidence map (:mod:`workbench.rca._confidence`) on proving-ground results files of the dev split.

``python benchmarks/fit_confidence.py benchmarks/results/proving_ground_dev.json [MORE.json ...]``

Reads every cause each answer listed (detected incidents, and controls, whose causes are all
wrong) with its stated confidence, its rank and whether it names a true cause
(``causes_right`` of :mod:`proving_ground.score`; for results files written before that field,
the case directory's ``truth.json`` when it is still there, else the top cause's ``first``).
It undoes the map each file was made with (its ``meta.confidence_map``), so the fit is on the
ranking's raw confidence, fits ``right ~ sigmoid(A * logit(raw) + B + FIRST * [ranked first])``
by logistic regression (scikit-learn, no penalty) and prints the three numbers and the
reliability per 0.1 band, of first causes and of the others, before and after. Refuses a
held-back results file: the map is fitted on dev only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _raw(stated: float, a: float, b: float, edge: float, first: float = 0.0) -> float:
    """Invert the map stated = sigmoid(a * logit(raw) + b + first)."""
    s = min(max(stated, 1e-9), 1 - 1e-9)
    z = (math.log(s / (1 - s)) - b - first) / a
    return min(max(1 / (1 + math.exp(-z)), edge), 1 - edge)


def bands(pairs: list[tuple[float, bool]]) -> list[tuple[str, int, float, float]]:
    """(band, n, mean confidence, share right) per 0.1 band of confidence."""
    out = []
    for k in range(10):
        lo, hi = k / 10, (k + 1) / 10
        inside = [(c, r) for c, r in pairs if lo <= c < hi or (k == 9 and c == 1.0)]
        if inside:
            out.append((f"{lo:.1f}-{hi:.1f}", len(inside), sum(c for c, _ in inside) / len(inside),
                        sum(r for _, r in inside) / len(inside)))
    return out


def _rights(case: dict) -> list[bool]:
    """Whether each listed cause of ``case`` (a results row) names a true cause."""
    causes = (case.get("answer") or {}).get("root_causes") or []
    if case.get("causes_right") is not None:
        return list(case["causes_right"])
    if not case.get("incident"):
        return [False] * len(causes)
    truth = Path(str(case.get("case", ""))) / "truth.json"
    if truth.is_file():
        from proving_ground.score import match

        true_causes = json.loads(truth.read_text(encoding="utf-8")).get("causes") or []
        return [any(match(rc, tc) for tc in true_causes) for rc in causes]
    return [bool(case["first"])] if case.get("first") is not None else []


def claims(path: Path, used_a: float | None, used_b: float | None, used_first: float | None) -> list[tuple[float, bool, bool]]:
    """(raw confidence, ranked first, right) of every cause listed in one results file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    used = data.get("meta", {}).get("confidence_map", {})
    a = used_a if used_a is not None else used.get("a", 1.0)
    b = used_b if used_b is not None else used.get("b", 0.0)
    first = used_first if used_first is not None else used.get("first", 0.0)
    from workbench.rca import _confidence

    out = []
    for case in data["cases"]:
        if not (case.get("control") or (case.get("incident") and case.get("detected"))):
            continue  # a missed incident lists no cause it could be judged on; a sparse log is neither
        causes = (case.get("answer") or {}).get("root_causes") or []
        if not causes and case.get("confidence") is not None:  # a row without the answer kept: its top cause only
            causes = [{"confidence": case["confidence"]}]
        for rank, (cause, right) in enumerate(zip(causes, _rights(case), strict=False)):
            if cause.get("confidence") is not None:
                out.append((_raw(cause["confidence"], a, b, _confidence._EDGE, first if rank == 0 else 0.0), rank == 0, right))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--used-a", type=float, default=None, help="A of the map the results were made with (default: its meta, else 1)")
    parser.add_argument("--used-b", type=float, default=None)
    parser.add_argument("--used-first", type=float, default=None)
    args = parser.parse_args()
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rows: list[tuple[float, bool, bool]] = []
    for path in args.results:
        split = json.loads(path.read_text(encoding="utf-8")).get("meta", {}).get("split")
        if split not in (None, "dev"):
            print(f"{path} is the {split} split: fit on dev only", file=sys.stderr)
            return 2
        rows += claims(path, args.used_a, args.used_b, args.used_first)
    if len({r for _, _, r in rows}) < 2:
        print("need both right and wrong causes to fit", file=sys.stderr)
        return 1
    x = np.array([[math.log(raw / (1 - raw)), float(first)] for raw, first, _ in rows])
    y = np.array([r for _, _, r in rows], dtype=int)
    fit = LogisticRegression(C=np.inf).fit(x, y)  # unpenalised
    new_a, new_first = (float(v) for v in fit.coef_[0])
    new_b = float(fit.intercept_[0])
    after = 1 / (1 + np.exp(-(x @ np.array([new_a, new_first]) + new_b)))
    print(f"{len(rows)} listed causes ({int(x[:, 1].sum())} ranked first), {int(y.sum())} right")
    print(f"PLATT_A = {new_a:.4f}\nPLATT_B = {new_b:.4f}\nPLATT_FIRST = {new_first:.4f}")
    for name, stated in (("raw", [raw for raw, _, _ in rows]), ("mapped", [float(p) for p in after])):
        for which, keep in (("first causes", True), ("the others", False)):
            pairs = [(c, bool(r)) for c, (_, first, r) in zip(stated, rows, strict=True) if first == keep]
            print(f"\n{name}, {which}: band  n  mean confidence  right")
            for band, n, mean, right in bands(pairs):
                print(f"  {band}  {n:3d}  {mean:.2f}  {right:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
