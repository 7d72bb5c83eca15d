"""``workbench diagnose`` and ``workbench report``."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

__all__ = ["add_cli"]


def _windows(args: argparse.Namespace):
    """The user's windows: both given, or the incident alone with the preceding span of equal length as the baseline."""
    from workbench.errors import WorkbenchError
    from workbench.windows import Window

    if not (args.baseline or args.incident):
        return None, None
    if args.baseline and not args.incident:
        raise WorkbenchError("--baseline", "a baseline needs an incident window to compare with.",
                             "add --incident START/END (alone, --incident takes the preceding span as the baseline).")

    def window(flag: str, text: str) -> Window:
        parts = text.split("/")
        if len(parts) != 2:
            raise WorkbenchError(flag, f"{text!r} is not START/END.", f"e.g. {flag} 2026-11-20T14:00/2026-11-21T00:00")
        try:
            return Window(*parts)
        except ValueError as exc:
            raise WorkbenchError(flag, f"{text!r}: {exc}.", f"e.g. {flag} 2026-11-20T14:00/2026-11-21T00:00") from None

    incident = window("--incident", args.incident)
    baseline = window("--baseline", args.baseline) if args.baseline else Window(incident.start - incident.duration, incident.start)
    if baseline.overlaps(incident):  # rows in both: every change reads smaller
        raise WorkbenchError("--baseline", f"the baseline {baseline} overlaps the incident {incident}.",
                             "give a baseline that ends where the incident starts, or earlier.")
    return baseline, incident


def _run(args: argparse.Namespace):
    from workbench.cli import progress
    from workbench.rca.diagnosis import diagnose
    from workbench.rca.tree import load_plugins

    load_plugins(args.plugin)
    baseline, incident = _windows(args)
    # Nothing but the answer may reach stdout: libraries that print go to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        return diagnose(args.case, progress=progress(args.quiet), baseline=baseline, incident=incident,
                        scheduler=args.scheduler)


def _diagnose(args: argparse.Namespace) -> int:
    result = _run(args)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result)
    return 0


def _report(args: argparse.Namespace) -> int:
    from workbench.case.loader import refuse_case_file
    from workbench.report.html import write_report

    refuse_case_file(args.output, args.case, "-o/--output")
    result = _run(args)
    out = write_report(result, Path(args.output))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)", file=sys.stderr)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("case", help="the case directory")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (it may register extra checks); repeatable")
    p.add_argument("--baseline", metavar="START/END", help="override the baseline window (ISO times); needs --incident")
    p.add_argument("--incident", metavar="START/END",
                   help="override the incident window (ISO times); alone, the baseline is the span of equal length before it")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run the passes over the log on this Dask scheduler, one task per parquet part "
                        "(needs pip install 'ml-workbench[dask]'; the workers must read the log's paths)")


def add_cli(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("diagnose", help="find the root cause of a prediction-quality regression",
                       description="Walk the decision tree over CASE and rank the root causes.")
    _common(d)
    d.add_argument("--json", action="store_true", help="print the JSON contract and nothing else on stdout")
    d.set_defaults(run=_diagnose)
    r = sub.add_parser("report", help="write a self-contained HTML report of the investigation")
    _common(r)
    r.add_argument("-o", "--output", default="report.html", help="where to write the report (default: report.html)")
    r.set_defaults(run=_report)
