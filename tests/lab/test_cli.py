"""`workbench lab compare|bisect`: argument parsing, exit codes, JSON and parquet output, one-message errors."""

from __future__ import annotations

import argparse
import json
import sys

import polars as pl
import pytest

from workbench.lab import make_sample_repo
from workbench.lab.cli import add_cli, main


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return make_sample_repo(tmp_path_factory.mktemp("lab") / "repo")


def parse(argv):
    parser = argparse.ArgumentParser(prog="workbench")
    add_cli(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_options_before_and_after_the_revisions_and_the_command_after_dashes():
    args = parse(["lab", "compare", "main", "HEAD", "--runs", "4", "--shrink", "iterations=2", "--",
                  "python", "train.py", "--runs", "3", "--", "x"])
    assert (args.a, args.b, args.runs, args.shrink) == ("main", "HEAD", 4, [("iterations", "2")])
    assert args.workflow == ["python", "train.py", "--runs", "3", "--", "x"]
    args = parse(["lab", "bisect", "--confirm", "5", "v1", "v2", "--json", "--", "python", "train.py"])
    assert (args.good, args.bad, args.confirm, args.json, args.workflow) == ("v1", "v2", 5, True, ["python", "train.py"])


def test_a_missing_command_is_a_usage_error():
    with pytest.raises(SystemExit) as info:
        parse(["lab", "compare", "a", "b"])
    assert info.value.code == 2


@pytest.mark.timing
def test_compare_two_configs_prints_json_writes_parquet_and_exits_1_on_regression(sample, tmp_path, capsys):
    out = tmp_path / "results.parquet"
    code = main(["lab", "compare", "0", "0.3", "--repo", str(sample.path), "--runs", "5", "--confirm", "5",
                 "--stop-at-first-batch", "--json", "--out", str(out), "--",
                 sys.executable, "train.py", "--extra-data-seconds", "{variant}"])
    captured = capsys.readouterr()
    assert code == 1, captured.err
    result = json.loads(captured.out)
    assert result["verdict"] == "regression" and result["moved_phase"] == "data_ready"
    assert "screen A run 1/5" in captured.err  # progress goes to stderr
    table = pl.read_parquet(out)
    assert {"variant", "run", "phase", "seconds"} <= set(table.columns)
    assert set(table["variant"]) == {"A", "B"}


def test_a_bad_revision_is_one_message_and_exit_2(sample, capsys):
    code = main(["lab", "compare", sample.good, "HEADD", "--repo", str(sample.path), "--", sys.executable, "train.py"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "revision 'HEADD' not found. Did you mean 'HEAD'?" in err
    assert "Traceback" not in err


def test_a_failing_workflow_is_reported_and_exits_2(sample, capsys):
    code = main(["lab", "compare", sample.good, sample.bad, "--repo", str(sample.path), "--warmup", "0", "-q",
                 "--", sys.executable, "train.py", "--config", "missing.json"])
    err = capsys.readouterr().err
    assert code == 2
    assert "runs failed" in err and "exited with code 1" in err and "missing.json" in err
    assert "Traceback" not in err


def test_bisect_with_a_placeholder_is_refused(sample, capsys):
    assert main(["lab", "bisect", "a", "b", "--", "python", "{variant}"]) == 2
    assert "Hint: drop {variant}" in capsys.readouterr().err


def test_the_workbench_command_reaches_the_lab(sample, capsys):
    from workbench.cli import main as workbench_main

    code = workbench_main(["lab", "bisect", sample.bad, sample.good, "--repo", str(sample.path), "--", "python", "train.py"])
    assert code == 2
    assert "is not an ancestor of BAD" in capsys.readouterr().err
