"""The ``workbench`` command: every subcommand prints plain text, or JSON with ``--json``.

A :class:`~workbench.errors.WorkbenchError` becomes a message on stderr and exit
status 2, never a traceback; progress goes to stderr so stdout stays clean.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence

from workbench.errors import WorkbenchError

__all__ = ["dispatch", "main", "progress"]


def progress(quiet: bool = False) -> Callable[[str], None]:
    """A progress callback writing timed lines to stderr."""
    start = time.perf_counter()

    def say(message: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - start:6.1f}s] {message}", file=sys.stderr, flush=True)

    return say


def _info(args: argparse.Namespace) -> int:
    from workbench.case.loader import open_case  # polars; never torch

    case = open_case(args.case, progress=progress(args.quiet))
    print(json.dumps(case.to_dict(), indent=2) if args.json else case)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Find out why a model's predictions went bad.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = sub.add_parser("info", help="open and validate a case, print what it holds")
    info.add_argument("case", help="the case directory")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    info.set_defaults(run=_info)
    # Each part registers its own subcommands; a part imports its heavy dependencies
    # (polars, torch) only when its command runs, so `workbench --help` answers at once.
    for module in ("workbench.rca.cli", "workbench.model.cli", "workbench.guardrails.cli", "workbench.sample.cli", "workbench.lab.cli"):
        importlib.import_module(module).add_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(_parser().parse_args(argv))


def dispatch(args: argparse.Namespace) -> int:
    """Run a parsed subcommand: a WorkbenchError becomes a message and exit 2, never a traceback."""
    try:
        return int(args.run(args) or 0)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if not _reader_left():  # a socket to a database or a cluster broke: an error like any other, said
            raise
        return 128 + getattr(signal, "SIGPIPE", 13)  # 141, as a process the pipe's signal ended


def _reader_left() -> bool:
    """Whether stdout's reader left (`workbench diagnose CASE | head -1`): stdout is a pipe that reports an error
    (POLLERR: no reader). Then stdout is pointed at the null device, so the interpreter's flush at exit does not raise
    again. A stream with no descriptor behind it (a notebook, a test's StringIO) has no reader to lose."""
    import select

    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is an OSError
        return False
    if hasattr(select, "poll"):
        poll = select.poll()
        poll.register(fd, select.POLLOUT)
        if not any(event & select.POLLERR for _, event in poll.poll(0)):
            return False
    os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
    return True


if __name__ == "__main__":
    sys.exit(main())
