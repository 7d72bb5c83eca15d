"""Regenerate the committed sample cases: ``python -m workbench.sample.build_all [ROOT]``.

Writes ``ROOT/cases/<incident>/`` for every incident (ROOT defaults to
``sample_data`` in the current directory) and ``ROOT/README.md`` describing
them. Deterministic: rerunning it on the same machine changes no byte.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workbench.sample.columns import ColumnNames
from workbench.sample.generate import generate_case
from workbench.sample.incidents import INCIDENTS

# One seed per case, picked so the committed set covers different targets,
# modes and onsets. calibration_shift uses renamed columns (exercising the
# loader's [columns] mapping); snapshot_bad_data ships .pt snapshots.
SEEDS = {
    "calibration_shift": 0,
    "control": 0,
    "feature_coverage_drop": 1,
    "feature_scale_bug": 1,
    "feature_slice_break": 3,
    "feature_stale": 3,
    "label_drift": 2,
    "slice_shift": 1,
    "snapshot_bad_data": 5,
    "snapshot_corrupt": 0,
    "upstream_break": 5,
}
RENAMED = frozenset({"calibration_shift"})
PT_SNAPSHOTS = frozenset({"snapshot_bad_data"})


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build_all(root: Path | str = "sample_data", *, quiet: bool = False, missing_only: bool = False) -> list[Path]:
    """Write every committed case under ``root/cases`` and ``root/README.md``.

    ``missing_only`` writes only the cases whose ``truth.json`` is absent (set-up on a
    fresh clone: the committed cases are kept byte for byte).
    """
    root = Path(root)
    written = []
    rows = []
    todo = [i for i in INCIDENTS if not (root / "cases" / i / "truth.json").exists()] if missing_only else INCIDENTS
    if missing_only and not todo:
        return []
    for incident in todo:
        if not quiet:
            print(f"{incident} (seed {SEEDS[incident]})", file=sys.stderr)
        case = generate_case(
            incident,
            root / "cases" / incident,
            seed=SEEDS[incident],
            columns=ColumnNames.renamed() if incident in RENAMED else None,
            snapshot_format="pt" if incident in PT_SNAPSHOTS else "safetensors",
        )
        truth = json.loads((case / "truth.json").read_text())
        target = truth["target"] or "-"
        if "slice" in truth:
            target += f" ({truth['slice']})"
        if "layer" in truth:
            target += f" ({truth['layer']})"
        rows.append(
            f"| `{incident}` | {SEEDS[incident]} | {truth['kind']} | `{target}` | {truth['onset'] or '-'} "
            f"| {_size(case) / 1e6:.1f} MB |"
        )
        written.append(case)
    if not missing_only:
        (root / "README.md").write_text(_README.format(table="\n".join(rows)))
    return written


_README = """\
# Sample cases

Simulated ads click-through (CTR) cases in the case format, one per injected
incident, with the answer in each case's `truth.json`. They are generated,
not hand-edited: regenerate them with

    python -m workbench.sample.build_all

(`workbench/sample/README.md` describes the simulation.) Each case holds 72 h
of served traffic (2026-11-18 to 2026-11-20, ~36k rows), a training sample,
12 snapshots of a small torch MLP, `model.py`, `lineage.json`, `events.csv`
and `workbench.toml`. Labels of the last ~5 h are partly null (label delay),
and two features drift slowly in every case, the control included.

| case | seed | kind | target | onset | size |
| --- | --- | --- | --- | --- | --- |
{table}

`calibration_shift` uses non-default column names (`event_time`, `p_click`,
`clicked`, `model_version`, `feat_*`, `geo_country`, `device_os`,
`ad_format`) mapped in its `workbench.toml`; `snapshot_bad_data` stores its
snapshots as `.pt` files written by `torch.save(model.state_dict(), path)`.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.sample.build_all", description=__doc__)
    parser.add_argument("root", nargs="?", default="sample_data", help="output folder (default: sample_data)")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--missing-only", action="store_true", help="only write cases that are missing")
    args = parser.parse_args(argv)
    for case in build_all(args.root, quiet=args.quiet, missing_only=args.missing_only):
        print(case)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
