"""The A/B decision on synthetic measurements (pure), and end to end on the sample repository."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from workbench.lab import Variant, assess, compare, compare_revisions, make_sample_repo
from workbench.lab.runner import TTFB, run_interleaved
from workbench.lab.settings import LabSettings

PHASES = {"startup": 0.03, "imports_done": 0.008, "data_ready": 0.06, "model_ready": 0.02, "first_batch": 1e-4}


def synthetic_table(shift: dict[str, float] | None = None, confirm_shift: dict[str, float] | None = None, *,
                    runs: int = 10, confirm: int = 0, noise: float = 0.04, seed: int = 0) -> pl.DataFrame:
    """Measurements like run_interleaved makes: log-normal phase noise, B shifted by ``shift`` seconds."""
    rng = np.random.default_rng(seed)
    rows, order = [], 0
    for stage, n, moved in (("screen", runs, shift or {}), ("confirm", confirm, confirm_shift or {})):
        for run in range(n):
            for variant in ("A", "B"):
                total = 0.0
                for phase, base in PHASES.items():
                    seconds = base * rng.lognormal(0, noise) + (moved.get(phase, 0.0) if variant == "B" else 0.0)
                    total += seconds
                    rows.append((variant, stage, run, order, phase, seconds))
                rows.append((variant, stage, run, order, TTFB, total))
                order += 1
    return pl.DataFrame(rows, schema=["variant", "stage", "run", "order", "phase", "seconds"], orient="row")


def test_a_confirmed_slowdown_is_a_regression_and_names_its_phase():
    result = assess(synthetic_table({"data_ready": 0.03}, {"data_ready": 0.03}, confirm=10))
    assert result.verdict == "regression" and result.regression
    assert result.moved_phase == "data_ready"
    assert result.screen.relative == pytest.approx(0.25, abs=0.05)
    assert result.confirmation.welch.alternative == "greater"  # one-sided in the screened direction
    assert "REGRESSION" in str(result) and "data_ready" in result.headline()


def test_a_screened_change_waits_for_confirmation():
    result = assess(synthetic_table({"data_ready": 0.03}))
    assert result.verdict == "pending"


def test_a_change_that_does_not_reproduce_is_not_declared():
    result = assess(synthetic_table({"data_ready": 0.03}, {}, confirm=10))
    assert result.verdict == "not reproduced"
    assert not result.regression


def test_a_faster_workflow_is_an_improvement():
    result = assess(synthetic_table({"model_ready": -0.015}, {"model_ready": -0.015}, confirm=10, noise=0.02))
    assert result.verdict == "improvement"
    assert result.moved_phase == "model_ready"


def test_a_significant_change_under_the_noise_threshold_is_no_change():
    result = assess(synthetic_table({"data_ready": 0.03}))
    tests_pass = replace(result.screen, threshold=0.5)  # as if A/A noise were 50%
    assert tests_pass.significant and not tests_pass.exceeds_threshold and not tests_pass.changed


def test_aa_tables_rarely_declare_a_regression():
    declared = sum(assess(synthetic_table({}, {}, confirm=10, seed=s)).regression for s in range(20))
    screened = sum(assess(synthetic_table(seed=s)).verdict == "pending" for s in range(20))
    assert declared == 0 and screened <= 2


def test_result_has_json_and_text_forms():
    result = assess(synthetic_table({"data_ready": 0.03}, {"data_ready": 0.03}, confirm=5))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["verdict"] == "regression" and data["moved_phase"] == "data_ready"
    assert {p["phase"] for p in data["phases"]} == {*PHASES, TTFB}
    assert "TTFB confirm" in str(result)


# --- end to end on the sample workflow ------------------------------------------------------------

# 20 runs per arm: a 10-run bisection on a busy CI host once missed its ~30% step (see test_bisection)
E2E = LabSettings(runs=20, confirm=20, stop_at_first_batch=True, timeout=60)


@pytest.mark.timing
def test_a_20_percent_ttfb_regression_is_detected(tmp_path):
    sample = make_sample_repo(tmp_path / "repo")
    base = Variant("base", sample.command(), cwd=str(sample.path))
    baseline = run_interleaved({"A": base}, LabSettings.make(E2E, runs=5))
    ttfb = baseline.table.filter(pl.col("phase") == TTFB)["seconds"].median()
    slower = Variant("+20%", sample.command("--extra-data-seconds", f"{0.2 * ttfb:.4f}"), cwd=str(sample.path))
    result = compare(base, slower, E2E)
    assert result.verdict == "regression", str(result)
    assert result.moved_phase == "data_ready"
    assert 0.1 < result.confirmation.relative < 0.35


@pytest.mark.timing
def test_aa_on_one_revision_declares_no_regression(tmp_path):
    sample = make_sample_repo(tmp_path / "repo")
    result = compare_revisions(sample.path, sample.good, sample.good, sample.command(), E2E)
    assert not result.regression, str(result)
    assert result.variants["A"].cwd == result.variants["B"].cwd  # one worktree for an A/A test


@pytest.mark.timing
def test_comparison_of_commands_without_git(tmp_path):
    code = "import time; from workbench.lab import mark; time.sleep({}); mark('first_batch')"
    fast = Variant("fast", (sys.executable, "-c", code.format(0.0)))
    slow = Variant("slow", (sys.executable, "-c", code.format(0.3)))  # far above process-start noise on a busy machine
    result = compare(fast, slow, LabSettings(runs=5, confirm=5, warmup=0))
    assert result.verdict == "regression"
    assert result.moved_phase == "first_batch"
