"""``workbench validate`` and ``workbench snapshots``: the model-side commands.

``validate CASE --snapshot ID`` exits 1 when the snapshot fails its gates and 0
when it passes, so it can guard a deploy script; an unreadable case exits 2
(``workbench.cli.main`` turns every :class:`~workbench.errors.WorkbenchError` into
a message). ``snapshots CASE`` prints the snapshot timeline diff.
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
