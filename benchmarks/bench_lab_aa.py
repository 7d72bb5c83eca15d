"""How often does the regression lab cry wolf, and does it catch a 20% slowdown?

On a freshly generated sample repository (workbench.lab.sample_repo):

1. A/A: ``--reps`` comparisons of one revision against itself with the lab's
   default decision settings. Acceptance: at least 19 of 20 declare no regression.
2. Power: ``--detect-reps`` comparisons of the base workflow against the same
   workflow with data loading slowed by 20% of its median TTFB.
3. Bisect over the sample history: the culprit commit and the phase it slowed.

Run: ``python benchmarks/bench_lab_aa.py [--reps 20] [--json out.json]`` (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from workbench.lab import LabSettings, Variant, bisect, compare, compare_revisions, make_sample_repo
from workbench.lab.runner import TTFB, run_interleaved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=20, help="A/A repetitions (default 20)")
    parser.add_argument("--detect-reps", type=int, default=5, help="20%% regression repetitions (default 5)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--confirm", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    settings = LabSettings(runs=args.runs, confirm=args.confirm, stop_at_first_batch=True, timeout=60)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-lab-") as tmp:
        sample = make_sample_repo(Path(tmp) / "repo")

        verdicts = []
        for i in range(args.reps):
            result = compare_revisions(sample.path, sample.good, sample.good, sample.command(), settings)
            verdicts.append(result.verdict)
            print(f"A/A {i + 1:>2}/{args.reps}: {result.verdict:<15} TTFB {result.screen.relative:+6.1%} "
                  f"(threshold {result.screen.threshold:.1%})", file=sys.stderr)
        false_alarms = verdicts.count("regression")

        base = Variant("base", sample.command(), cwd=str(sample.path))
        baseline = run_interleaved({"A": base}, settings)
        ttfb = float(baseline.table.filter(pl.col("phase") == TTFB)["seconds"].median())
        slower = Variant("+20%", sample.command("--extra-data-seconds", f"{0.2 * ttfb:.4f}"), cwd=str(sample.path))
        detected, sizes, phases = 0, [], []
        for i in range(args.detect_reps):
            result = compare(base, slower, settings)
            detected += result.regression
            ref = result.confirmation or result.screen
            sizes.append(ref.relative)
            phases.append(result.moved_phase)
            print(f"+20% {i + 1}/{args.detect_reps}: {result.verdict:<15} TTFB {ref.relative:+6.1%} "
                  f"phase {result.moved_phase}", file=sys.stderr)

        found = bisect(sample.path, sample.good, sample.bad, sample.command(), settings)
        figures = {
            "aa_no_regression": args.reps - false_alarms, "aa_reps": args.reps,
            "aa_verdicts": {v: verdicts.count(v) for v in sorted(set(verdicts))},
            "baseline_ttfb_s": ttfb, "detect_20pct": detected, "detect_reps": args.detect_reps,
            "detect_sizes": sizes, "detect_phases": phases,
            "bisect_culprit_ok": found.culprit_revision == sample.culprit.sha, "bisect_phase": found.phase,
            "bisect_comparisons": len(found.steps), "bisect_changes": len(found.changes),
            "settings": settings.to_dict(), "seconds": round(time.perf_counter() - started, 1),
        }
    print(f"A/A: {figures['aa_no_regression']}/{args.reps} declared no regression "
          f"(verdicts {figures['aa_verdicts']})")
    print(f"20% TTFB regression (baseline TTFB {ttfb:.3f} s): detected {detected}/{args.detect_reps}, "
          f"measured {', '.join(f'{s:+.1%}' for s in sizes)}, phases {phases}")
    print(f"bisect: culprit {'correct' if figures['bisect_culprit_ok'] else 'WRONG'} "
          f"({found.culprit_subject!r}), phase {found.phase}, {len(found.steps)} comparisons "
          f"over {len(found.changes)} changes")
    print(f"total {figures['seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if figures["aa_no_regression"] >= round(0.95 * args.reps) else 1


if __name__ == "__main__":
    sys.exit(main())
