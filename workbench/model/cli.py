"""``workbench validate``, ``workbench snapshots`` and ``workbench audit``: the model-side commands.

``validate CASE --snapshot ID`` exits 1 when the snapshot fails its gates and 0
when it passes, so it can guard a deploy script; an unreadable case exits 2
(``workbench.cli.main`` turns every :class:`~workbench.errors.WorkbenchError` into
a message). ``snapshots CASE`` prints the snapshot timeline diff; ``audit CASE`` the model's data dependencies
(:mod:`workbench.model.audit`).
"""

from __future__ import annotations

import argparse
import json

__all__ = ["add_cli"]


def _validate(args: argparse.Namespace) -> int:
    from workbench.case.loader import open_case
    from workbench.cli import progress
    from workbench.model.validation import validate_snapshot

    say = progress(args.quiet)
    case = open_case(args.case, progress=say)
    say(f"validating snapshot {args.snapshot} on holdout data")
    result = validate_snapshot(case, args.snapshot, reference=args.reference)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result)
    return 0 if result.passed else 1


def _snapshots(args: argparse.Namespace) -> int:
    from workbench.case.loader import open_case
    from workbench.cli import progress
    from workbench.model.diff import snapshot_timeline

    say = progress(args.quiet)
    case = open_case(args.case, progress=say)
    say(f"diffing {len(case.snapshots)} snapshots")
    result = snapshot_timeline(case)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result)
    return 0


def _audit(args: argparse.Namespace) -> int:
    import contextlib
    import sys
    from pathlib import Path

    from workbench.case.loader import open_case, refuse_case_file
    from workbench.cli import progress
    from workbench.guardrails.cli import parse_window
    from workbench.model.audit import audit_dependencies

    if args.html:
        refuse_case_file(args.html, args.case, "--html")
    say = progress(args.quiet)
    window = parse_window(args.window)
    with contextlib.redirect_stdout(sys.stderr):  # nothing but the answer reaches stdout
        case = open_case(args.case, progress=say)
        say("auditing the model's data dependencies (SHAP, permutation importance, bundles, lineage)")
        result = audit_dependencies(case, window, snapshot=args.snapshot)
    if args.html:
        from workbench.report.audit import write_audit

        out = write_audit(result, Path(args.html))
        say(f"wrote {out}")
    print(json.dumps(result.to_dict(), indent=2) if args.json else result)
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register ``validate`` and ``snapshots`` on the ``workbench`` command."""
    val = subparsers.add_parser("validate", help="gate a snapshot on holdout data against the stable one (exit 1 on fail)")
    val.add_argument("case", help="the case directory")
    val.add_argument("--snapshot", required=True, metavar="ID", help="the snapshot to validate")
    val.add_argument("--reference", metavar="ID", help="compare against this snapshot (default: the stable one)")
    val.add_argument("--json", action="store_true", help="print JSON")
    val.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    val.set_defaults(run=_validate)

    snaps = subparsers.add_parser("snapshots", help="diff every snapshot against its predecessor; find the first bad one")
    snaps.add_argument("case", help="the case directory")
    snaps.add_argument("--json", action="store_true", help="print JSON")
    snaps.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    snaps.set_defaults(run=_snapshots)

    audit = subparsers.add_parser("audit", help="the model's data dependencies: attribution shares, removal candidates, "
                                  "bundles, upstream tables")
    audit.add_argument("case", help="the case directory")
    audit.add_argument("--window", metavar="FROM/TO", default=None,
                       help="a healthy stretch of traffic to audit on (default, or 'latest': the week before the last "
                            "day, which the guard's newest window is not part of)")
    audit.add_argument("--snapshot", metavar="ID", help="the snapshot to audit (default: the one that served the window)")
    audit.add_argument("--html", metavar="FILE", help="also write the audit as a self-contained HTML page")
    audit.add_argument("--json", action="store_true", help="print JSON")
    audit.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    audit.set_defaults(run=_audit)
