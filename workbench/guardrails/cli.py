"""``workbench guard CASE [--window latest|FROM/TO] [--json]``: exit 0 when every monitor passes, 1 when one trips,
2 when the case is unreadable (``workbench.cli.dispatch`` turns a :class:`~workbench.errors.WorkbenchError` into 2)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.windows import Window

__all__ = ["add_cli", "parse_window"]


def parse_window(text: str | None) -> Window | None:
    """``latest`` (or nothing): None, the newest window; ``FROM/TO``: that window."""
    from workbench.errors import WorkbenchError
    from workbench.windows import Window

    if text is None or text.strip().lower() == "latest":
        return None
    parts = text.split("/")
    if len(parts) != 2:
        raise WorkbenchError("--window", f"{text!r} is neither 'latest' nor FROM/TO.", "e.g. --window 2026-11-20T00:00/2026-11-21T00:00")
    try:
        return Window(*parts)
    except ValueError as exc:
        raise WorkbenchError("--window", f"{text!r}: {exc}.", "e.g. --window 2026-11-20T00:00/2026-11-21T00:00") from None


def _guard(args: argparse.Namespace) -> int:
    from workbench.case.loader import open_case
    from workbench.cli import progress
    from workbench.guardrails.monitors import guard

    say = progress(args.quiet)
    window = parse_window(args.window)
    with contextlib.redirect_stdout(sys.stderr):  # nothing but the verdict reaches stdout
        case = open_case(args.case, progress=say)
        say("running the guardrail monitors")
        report = guard(case, window)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    return 1 if report.tripped else 0


def add_cli(sub: argparse._SubParsersAction) -> None:
    """Register ``guard`` on the ``workbench`` command."""
    g = sub.add_parser("guard", help="guardrail monitors on the newest window (exit 1 when one trips)",
                       description="Run the guardrail monitors (feature coverage, scale and drift; label drift; calibration; "
                                   "quality where labels exist; the snapshot gate) on the newest window against the one "
                                   "before it. Exit 0: every monitor passes; 1: one trips; 2: the case is unreadable.")
    g.add_argument("case", help="the case directory")
    g.add_argument("--window", metavar="latest|FROM/TO", default="latest",
                   help="the window to guard: 'latest' (default: the last [guard] window of data, one day) or FROM/TO")
    g.add_argument("--json", action="store_true", help="print the verdict as JSON and nothing else on stdout")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    g.set_defaults(run=_guard)
