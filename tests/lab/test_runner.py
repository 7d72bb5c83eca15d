"""Running workflows: phases from marks, interleaving, and failures that never count as measurements."""

from __future__ import annotations

import sys
import textwrap

import polars as pl
import pytest

from workbench.lab.errors import LabError
from workbench.lab.runner import TTFB, RunFailure, Variant, run_interleaved, run_once
from workbench.lab.settings import LabSettings

FAST = LabSettings(runs=3, confirm=3, warmup=0, timeout=20)


def script(tmp_path, body: str, name: str = "work.py") -> Variant:
    path = tmp_path / name
    path.write_text("from workbench.lab import mark, shrink\nimport os, sys, time\n" + textwrap.dedent(body))
    return Variant(name, (sys.executable, str(path)), cwd=str(tmp_path))


def test_phases_run_from_mark_to_mark_and_sum_to_ttfb(tmp_path):
    v = script(tmp_path, """
        time.sleep(0.03)
        mark("data_ready")
        mark("first_batch")
        mark("after_the_batch_is_ignored")
    """)
    phases = run_once(v)
    assert list(phases) == ["startup", "data_ready", "first_batch", TTFB]
    assert phases["data_ready"] >= 0.03
    assert phases[TTFB] == pytest.approx(sum(s for p, s in phases.items() if p != TTFB))


def test_runs_are_interleaved_and_stored_as_a_table(tmp_path):
    v = script(tmp_path, 'mark("first_batch")\n')
    runs = run_interleaved({"A": v, "B": v}, LabSettings.make(FAST, runs=4), stage="screen")
    ttfb = runs.table.filter(pl.col("phase") == TTFB).sort("order")
    assert ttfb["variant"].to_list() == ["A", "B", "B", "A", "A", "B", "B", "A"]  # alternating rounds cancel drift
    assert set(runs.table.columns) >= {"variant", "run", "phase", "seconds"}
    path = tmp_path / "runs.parquet"
    runs.table.write_parquet(path)
    assert pl.read_parquet(path).equals(runs.table)


def test_shrink_and_env_reach_the_workflow(tmp_path):
    v = script(tmp_path, """
        assert shrink("iterations", 100) == 2 and os.environ["MODE"] == "tiny", "not shrunk"
        mark("first_batch")
    """)
    assert not isinstance(run_once(v, LabSettings(shrink={"iterations": "2"}, env={"MODE": "tiny"})), RunFailure)


def test_a_failing_run_is_reported_and_not_measured(tmp_path):
    counter = tmp_path / "count"
    v = script(tmp_path, f"""
        n = int(open({str(counter)!r}).read()) if os.path.exists({str(counter)!r}) else 0
        open({str(counter)!r}, "w").write(str(n + 1))
        if n in (1, 3):
            sys.exit("flaky data source")
        mark("first_batch")
    """)
    runs = run_interleaved({"A": v}, LabSettings.make(FAST, runs=5))
    assert [f.reason for f in runs.failures] == ["exited with code 1"] * 2
    assert runs.failures[0].stderr_tail == "flaky data source"
    assert runs.table.filter(pl.col("phase") == TTFB).height == 3


def test_a_run_over_the_timeout_is_killed_and_reported(tmp_path):
    v = script(tmp_path, "time.sleep(30)\n")
    with pytest.raises(LabError, match=r"3 of 3 runs failed") as info:
        run_interleaved({"A": v}, LabSettings.make(FAST, timeout=0.3))
    assert "timed out after 0.3 s" in str(info.value)
    assert "Hint: run the command by hand" in str(info.value)


def test_a_command_that_always_fails_stops_the_lab_with_its_error(tmp_path):
    v = script(tmp_path, 'raise SystemExit("config.json: missing key rows")\n')
    with pytest.raises(LabError, match=r"exited with code 1: config.json: missing key rows"):
        run_interleaved({"A": v, "B": v}, FAST)


def test_a_run_without_a_first_batch_is_not_a_measurement(tmp_path):
    v = script(tmp_path, 'mark("data_ready")\n')
    failure = run_once(v)
    assert isinstance(failure, RunFailure)
    assert failure.reason.startswith("no first batch")
    assert "mark('first_batch')" in failure.reason


def test_a_missing_command_is_named():
    with pytest.raises(LabError, match=r"command not found: 'no-such-python'") as info:
        run_once(Variant("x", ("no-such-python", "train.py")))
    assert "Hint: give the workflow after `--`" in str(info.value)


def test_settings_reject_typos_and_bad_values():
    with pytest.raises(LabError, match=r"Hint: did you mean 'runs'\?"):
        LabSettings.make(rnus=5)
    with pytest.raises(LabError, match=r"runs=2: expected an integer >= 3 \(the fewest successful runs per side a test needs\)"):
        LabSettings(runs=2)
    with pytest.raises(LabError, match=r"alpha=0.7"):
        LabSettings(alpha=0.7)
