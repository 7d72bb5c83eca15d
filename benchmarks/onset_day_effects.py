"""The onset test's false-alarm rate where days vary: ``python benchmarks/onset_day_effects.py --days 10 --level 0.05``.

Simulates logs with no change: hourly periods over ``--days`` days, each period's value
its sampling error (200-800 labelled rows' weight, following the day), plus, in the
``days`` logs, a common deviation per calendar day of sd 1-1.4 periods' sampling errors
(a weekday's own click rate, a day of unusual traffic). Each log goes through the
detector's scan (``workbench.data.onset``: the best shift, its robust noise and
day-to-day variance, the second shift) and is compared with the detector's threshold
at ``--level``, from null draws of the sampling error alone.

The share of logs whose maximum passes is the false-alarm rate; the level is what it
should be. Without day effects it is; with them it is above it, because over a few days
the day-to-day variance is estimated from a few values and a statistic over it has a
heavier tail than the null draws (a t against a z). The module docstring of
``workbench.data.onset`` (step 5) quotes these figures. Prints one line per kind of log
and appends to ``--results`` (JSON), with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def false_alarm_rate(days: int, sims: int, level: float, day_effects: bool, seed: int = 11) -> float:
    """The share of ``sims`` no-change logs of ``days`` hourly days whose scan passes the detector's threshold."""
    import numpy as np

    from workbench.data.onset import NULL_DRAWS, _critical, _days, _null_maxima, _scan, _space

    rng = np.random.default_rng(seed)
    n = 24 * days
    hours = np.arange(n, dtype=float)
    day = _days(hours, 0.0, 1.0)
    passed = 0
    for _ in range(sims):
        weights = rng.uniform(200, 800, n) * (1 + 0.5 * np.sin(2 * np.pi * hours / 24))
        space = _space(hours, weights, 1.0, day=day)
        tau = rng.uniform(1.0, 1.4) / np.sqrt(weights.mean()) if day_effects else 0.0
        y = rng.standard_normal(n) / np.sqrt(weights) + (tau * rng.standard_normal(days))[day]
        threshold = _critical(_null_maxima(weights.tobytes(), hours.tobytes(), 1.0, 0.0, 0, NULL_DRAWS), level)
        passed += _scan(space, space.project(y * space.sw), 0, threshold)[3] >= threshold
    return passed / sims


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--sims", type=int, default=300)
    ap.add_argument("--level", type=float, default=0.05, help="the test's level (the detector's: 0.001 / 3 metrics)")
    ap.add_argument("--results", type=Path, default=HERE / "results" / "onset_day_effects.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    start = time.time()
    rates = {kind: false_alarm_rate(args.days, args.sims, args.level, kind == "days") for kind in ("no days", "days")}
    out = {"days": args.days, "sims": args.sims, "level": args.level, "rates": rates,
           "seconds": round(time.time() - start, 1), "load_1min": round(os.getloadavg()[0], 2)}
    for kind, rate in rates.items():
        print(f"{kind:8s} false-alarm rate {rate:.3f} at level {args.level:g} ({args.sims} logs of {args.days} days)")
    results = json.loads(args.results.read_text()) if args.results.exists() else []
    results.append(out)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
