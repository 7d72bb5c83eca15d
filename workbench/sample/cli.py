"""The ``workbench sample`` subcommand: write one sample case, print its path."""

from __future__ import annotations

import argparse
import sys

from workbench.sample.columns import DEFAULT_ROWS, PARTITION_ROWS, SNAPSHOT_FORMATS, ColumnNames
from workbench.sample.incidents import INCIDENTS


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--incident", required=True, choices=INCIDENTS, metavar="NAME", help=f"one of: {', '.join(INCIDENTS)}"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="case directory to write")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--rows", type=int, default=None, help=f"served rows over 72 h (default {DEFAULT_ROWS})")
    p.add_argument(
        "--partitioned",
        action="store_true",
        default=None,
        help=f"write predictions/date=*/part-0.parquet (default: when rows > {PARTITION_ROWS:,})",
    )
    p.add_argument(
        "--renamed-columns",
        action="store_true",
        help="use non-default column names (event_time, p_click, clicked, model_version, feat_*, ...)",
    )
    p.add_argument("--snapshot-format", choices=SNAPSHOT_FORMATS, default="safetensors")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``sample`` on the object returned by ``ArgumentParser.add_subparsers()``.

    The subparser's ``func`` default is ``run(args) -> int`` (the exit status).
    """
    p = subparsers.add_parser(
        "sample",
        help="write a sample ads-CTR case with an injected incident",
        description="Write a sample ads-CTR case with an injected incident and its answer in truth.json.",
    )
    _arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write the case; its path is the only line on stdout, progress goes to stderr."""
    from workbench.sample.generate import generate_case  # torch: loaded only when a case is written

    path = generate_case(
        args.incident,
        args.out,
        seed=args.seed,
        rows=args.rows,
        partitioned=args.partitioned,
        progress=None if args.quiet else (lambda msg: print(msg, file=sys.stderr)),
        columns=ColumnNames.renamed() if args.renamed_columns else None,
        snapshot_format=args.snapshot_format,
    )
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m workbench.sample --incident NAME --out DIR [...]``."""
    parser = argparse.ArgumentParser(prog="python -m workbench.sample", description="Write a sample case.")
    _arguments(parser)
    return run(parser.parse_args(argv))
