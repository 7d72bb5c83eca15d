"""``workbench lab compare`` and ``workbench lab bisect``: the regression lab on the command line.

Results go to stdout (text, or JSON with ``--json``), progress to stderr.
Exit status: ``compare`` 1 when it declares a regression, else 0; ``bisect``
0; any lab error (bad revision, failing command) prints one message and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["add_cli", "main"]

PLACEHOLDER = "{variant}"

_EPILOG = """\
A and B are git revisions of --repo, each run from its own worktree; or, when the
command contains {variant}, two values substituted into it (run in --repo).
Exit status of compare: 1 if a regression is declared, 0 if not, 2 on error.

examples:
  workbench lab compare main HEAD --repo . -- python train.py
  workbench lab compare small large -- python train.py --config {variant}.json
  workbench lab bisect v1.2 HEAD --runs 8 --stop-at-first-batch -- python train.py
"""


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repo", default=".", help="the git repository (or, with {variant}, where to run)")
    parser.add_argument("--runs", type=int, default=10, help="measured runs per variant (default 10)")
    parser.add_argument("--confirm", type=int, default=10,
                        help="confirmation runs per variant when the screen sees a change (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured runs per variant first (default 1)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per run before it is killed")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level of both tests")
    parser.add_argument("--fpr", type=float, default=0.05, help="target false-positive rate of the noise threshold")
    parser.add_argument("--shrink", type=_pair, action="append", default=[], metavar="NAME=VALUE",
                        help="shrink the workflow: the value workbench.lab.shrink(NAME, ...) returns")
    parser.add_argument("--env", type=_pair, action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the workflow")
    parser.add_argument("--stop-at-first-batch", action="store_true", help="end each run at its first batch")
    parser.add_argument("--out", type=Path, help="write every measurement to this parquet file")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("workflow", nargs="+", metavar="-- COMMAND", help="the training workflow, after --")


def add_cli(subparsers: Any) -> None:
    """Register ``lab`` with the sub-commands ``compare`` and ``bisect`` on ``workbench``'s subparsers."""
    lab = subparsers.add_parser("lab", help="A/B test training workflows for time-to-first-batch",
                                description="A/B tests of training workflows for time-to-first-batch (TTFB).")
    sub = lab.add_subparsers(dest="lab_command", required=True, metavar="LAB_COMMAND")
    compare = sub.add_parser("compare", help="A/B test two revisions or configs",
                             epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    compare.add_argument("a", metavar="A", help="baseline revision (or value of {variant})")
    compare.add_argument("b", metavar="B", help="candidate revision (or value of {variant})")
    _common(compare)
    compare.set_defaults(run=_compare)
    bisect = sub.add_parser("bisect", help="find the first commit that slowed time-to-first-batch",
                            epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    bisect.add_argument("good", metavar="GOOD", help="a revision without the regression")
    bisect.add_argument("bad", metavar="BAD", help="a later revision with it")
    _common(bisect)
    bisect.set_defaults(run=_bisect)


def _settings(args: argparse.Namespace) -> Any:
    from workbench.lab.settings import LabSettings

    return LabSettings(runs=args.runs, confirm=args.confirm, warmup=args.warmup, timeout=args.timeout,
                       alpha=args.alpha, fpr=args.fpr, shrink=tuple(args.shrink), env=tuple(args.env),
                       stop_at_first_batch=args.stop_at_first_batch)


def _progress(args: argparse.Namespace) -> Any:
    from workbench.cli import progress

    return progress(args.quiet)


def _emit(args: argparse.Namespace, result: Any, table: Any) -> None:
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.write_parquet(args.out)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result)


def _compare(args: argparse.Namespace) -> int:
    from workbench.lab.comparison import compare, compare_revisions
    from workbench.lab.errors import LabError
    from workbench.lab.runner import Variant

    settings, say = _settings(args), _progress(args)
    if any(PLACEHOLDER in part for part in args.workflow):
        cwd = Path(args.repo)
        if not cwd.is_dir():
            raise LabError(cwd, "directory not found.", "pass --repo with the directory to run the command in.")
        variant_a, variant_b = [Variant(value, [part.replace(PLACEHOLDER, value) for part in args.workflow], cwd=str(cwd))
                                for value in (args.a, args.b)]
        result = compare(variant_a, variant_b, settings, progress=say)
    else:
        result = compare_revisions(args.repo, args.a, args.b, args.workflow, settings, progress=say)
    _emit(args, result, result.table)
    return 1 if result.regression else 0


def _bisect(args: argparse.Namespace) -> int:
    from workbench.lab.bisection import bisect
    from workbench.lab.errors import LabError

    if any(PLACEHOLDER in part for part in args.workflow):
        raise LabError("lab bisect", f"{PLACEHOLDER} is not supported: bisect walks git revisions.",
                       "drop {variant} from the command and pass GOOD and BAD revisions.")
    result = bisect(args.repo, args.good, args.bad, args.workflow, _settings(args), progress=_progress(args))
    _emit(args, result, result.table())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``workbench lab ...`` alone (``argv`` starts with ``lab``), as ``workbench.cli.main`` would."""
    from workbench.cli import dispatch

    parser = argparse.ArgumentParser(prog="workbench")
    add_cli(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return dispatch(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
