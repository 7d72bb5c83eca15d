"""Counterfactual re-scoring: the snapshot swap blames only a bad snapshot; serving consistency sees a serving-side change."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import sample_case
from workbench import open_case
from workbench.data.onset import detect_onset
from workbench.metrics import normalized_entropy, row_log_loss
from workbench.model.rescore import serving_consistency, snapshot_swap


def _windows(name: str):
    case = open_case(sample_case(name))
    onset = detect_onset(case)
    return case, onset.baseline, onset.incident


def test_swap_recovers_the_regression_of_a_corrupt_snapshot():
    case, baseline, incident = _windows("snapshot_corrupt")
    swap = snapshot_swap(case, baseline, incident)
    truth = json.loads((case.root / "truth.json").read_text())
    assert truth["target"] in swap.served
    assert swap.recovered > 0.5 and swap.z > 5
    assert swap.ne_swapped < swap.ne_rescored


@pytest.mark.parametrize("name", ["calibration_shift", "feature_coverage_drop"])
def test_swap_does_not_blame_a_benign_snapshot(name):
    case, baseline, incident = _windows(name)
    swap = snapshot_swap(case, baseline, incident)
    assert swap is not None and swap.recovered < 0.25


def test_serving_consistency_sees_a_calibration_change_only():
    case, baseline, incident = _windows("calibration_shift")
    moved = serving_consistency(case, baseline, incident)
    assert moved.gap_baseline < 1e-3 < 0.1 < moved.changed  # logged == model output before; not after
    case, baseline, incident = _windows("feature_coverage_drop")
    still = serving_consistency(case, baseline, incident)
    assert still.changed < 1e-3  # a broken feature changes logged and re-scored predictions alike


def test_row_log_loss_matches_normalized_entropy():
    rng = np.random.default_rng(0)
    p, y = rng.uniform(0.01, 0.99, 1000), (rng.uniform(size=1000) < 0.3).astype(float)
    r = y.mean()
    assert row_log_loss(p, y).mean() / -(r * np.log(r) + (1 - r) * np.log(1 - r)) == pytest.approx(normalized_entropy(p, y))
