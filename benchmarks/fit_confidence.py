"""Fit the confidence map (:mod:`workbench.rca._confidence`) on a proving-ground results file of the dev split.

``python benchmarks/fit_confidence.py benchmarks/results/proving_ground_dev.json``

Reads each detected incident's top-cause confidence and whether the top cause was the
true one (``first``), undoes the map in effect when the results were made (so the fit
is on the ranking's raw confidence), fits ``right ~ sigmoid(A * logit(raw) + B)`` by
logistic regression (scikit-learn, no penalty), and prints A, B and the reliability per
0.1 band before and after. Refuses a held-back results file: the map is fitted on dev only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _raw(stated: float, a: float, b: float, edge: float) -> float:
    """Invert the map stated = sigmoid(a * logit(raw) + b)."""
    s = min(max(stated, 1e-9), 1 - 1e-9)
    z = (math.log(s / (1 - s)) - b) / a
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--used-a", type=float, default=None, help="A of the map the results were made with (default: its meta, else 1)")
    parser.add_argument("--used-b", type=float, default=None)
    args = parser.parse_args()
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from workbench.rca import _confidence

    data = json.loads(args.results.read_text(encoding="utf-8"))
    if data.get("meta", {}).get("split") not in (None, "dev"):
        print(f"{args.results} is the {data['meta']['split']} split: fit on dev only", file=sys.stderr)
        return 2
    used = data.get("meta", {}).get("confidence_map", {})
    a = args.used_a if args.used_a is not None else used.get("a", 1.0)
    b = args.used_b if args.used_b is not None else used.get("b", 0.0)
    pairs = [(_raw(c["confidence"], a, b, _confidence._EDGE), bool(c["first"])) for c in data["cases"]
             if c.get("incident") and c.get("detected") and c.get("confidence") is not None and c.get("first") is not None]
    if len({r for _, r in pairs}) < 2:
        print("need both right and wrong top causes to fit", file=sys.stderr)
        return 1
    x = np.array([[math.log(r / (1 - r))] for r, _ in pairs])
    y = np.array([r for _, r in pairs], dtype=int)
    fit = LogisticRegression(C=np.inf).fit(x, y)  # unpenalised
    new_a, new_b = float(fit.coef_[0][0]), float(fit.intercept_[0])
    after = [(1 / (1 + math.exp(-(new_a * xi[0] + new_b))), r) for xi, (_, r) in zip(x, pairs, strict=True)]
    print(f"{len(pairs)} detected incidents with a top cause, {int(y.sum())} right")
    print(f"PLATT_A = {new_a:.4f}\nPLATT_B = {new_b:.4f}")
    for name, ps in (("raw", pairs), ("mapped", after)):
        print(f"\n{name}: band  n  mean confidence  right")
        for band, n, mean, right in bands(ps):
            print(f"  {band}  {n:3d}  {mean:.2f}  {right:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
