"""The stated confidence: a monotone map of the ranking's raw score and rank, fitted on the dev split by benchmarks/fit_confidence.py."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench.rca import _confidence
from workbench.rca._confidence import calibrated

ROOT = Path(__file__).resolve().parents[2]


def test_the_map_is_monotone_inside_zero_one_and_never_reorders_causes():
    raw = np.linspace(0, 1, 1001)
    for first in (False, True):
        out = np.array([calibrated(float(r), first=first) for r in raw])
        assert np.all(np.diff(out) >= 0) and out.min() > 0 and out.max() < 1
    # the first cause has the highest raw score, and at any raw score it states more than a later cause
    assert all(calibrated(float(r), first=True) > calibrated(float(r)) for r in raw)
    assert math.isnan(calibrated(math.nan))


def test_with_a_unit_slope_and_no_offset_the_map_is_the_identity(monkeypatch):
    monkeypatch.setattr(_confidence, "PLATT_A", 1.0)
    monkeypatch.setattr(_confidence, "PLATT_B", 0.0)
    monkeypatch.setattr(_confidence, "PLATT_FIRST", 0.0)
    for r in (0.01, 0.2, 0.5, 0.77, 0.99):
        assert calibrated(r) == pytest.approx(r, abs=1e-12) and calibrated(r, first=True) == pytest.approx(r, abs=1e-12)


def test_the_fit_recovers_a_known_map_and_refuses_the_held_back_split(tmp_path):
    """Answers of two causes drawn so that 'right' follows sigmoid(2 logit(raw) - 1 + 1.5 [first]) exactly in
    expectation, stated through a map (a=0.5, b=0.3, first=0.4) the script must undo: it finds 2, -1 and 1.5. Controls'
    causes count as wrong."""
    rng = np.random.default_rng(5)

    def stated(raw: float, first: bool) -> float:
        return 1 / (1 + math.exp(-(0.5 * math.log(raw / (1 - raw)) + 0.3 + (0.4 if first else 0.0))))

    cases = []
    for _ in range(3000):
        raw = rng.uniform(0.02, 0.98, 2)
        p = 1 / (1 + np.exp(-(2 * np.log(raw / (1 - raw)) - 1 + np.array([1.5, 0.0]))))
        cases.append({"incident": True, "detected": True, "confidence": stated(raw[0], True),
                      "causes_right": [bool(rng.random() < q) for q in p],
                      "answer": {"root_causes": [{"confidence": stated(raw[0], True)}, {"confidence": stated(raw[1], False)}]}})
    cases.append({"incident": False, "control": True, "answer": {"root_causes": [{"confidence": 0.5}]}, "causes_right": [False]})
    dev = tmp_path / "dev.json"
    dev.write_text(json.dumps({"meta": {"split": "dev", "confidence_map": {"a": 0.5, "b": 0.3, "first": 0.4}}, "cases": cases}))
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fit_confidence.py"), str(dev)], capture_output=True, text=True, check=True).stdout
    assert "6001 listed causes (3001 ranked first)" in out  # the control's one cause is ranked first
    a = float(out.split("PLATT_A = ")[1].split()[0])
    b = float(out.split("PLATT_B = ")[1].split()[0])
    first = float(out.split("PLATT_FIRST = ")[1].split()[0])
    assert a == pytest.approx(2.0, abs=0.25) and b == pytest.approx(-1.0, abs=0.2) and first == pytest.approx(1.5, abs=0.25)
    held = tmp_path / "held.json"
    held.write_text(json.dumps({"meta": {"split": "held"}, "cases": cases}))
    refused = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fit_confidence.py"), str(held)], capture_output=True, text=True)
    assert refused.returncode == 2 and "fit on dev only" in refused.stderr
