"""The stated confidence: a monotone map of the ranking's raw score, fitted on the dev split by benchmarks/fit_confidence.py."""

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
    out = np.array([calibrated(float(r)) for r in raw])
    assert np.all(np.diff(out) >= 0) and out.min() > 0 and out.max() < 1
    assert math.isnan(calibrated(math.nan))


def test_with_a_unit_slope_and_no_offset_the_map_is_the_identity(monkeypatch):
    monkeypatch.setattr(_confidence, "PLATT_A", 1.0)
    monkeypatch.setattr(_confidence, "PLATT_B", 0.0)
    for r in (0.01, 0.2, 0.5, 0.77, 0.99):
        assert calibrated(r) == pytest.approx(r, abs=1e-12)


def test_the_fit_recovers_a_known_map_and_refuses_the_held_back_split(tmp_path):
    """Cases drawn so that 'right' follows sigmoid(2 logit(raw) - 1) exactly in expectation: the script finds 2 and -1."""
    rng = np.random.default_rng(5)
    raw = rng.uniform(0.02, 0.98, 4000)
    p = 1 / (1 + np.exp(-(2 * np.log(raw / (1 - raw)) - 1)))
    cases = [{"incident": True, "detected": True, "confidence": float(r), "first": bool(rng.random() < q)} for r, q in zip(raw, p, strict=True)]
    dev = tmp_path / "dev.json"
    dev.write_text(json.dumps({"meta": {"split": "dev", "confidence_map": {"a": 1.0, "b": 0.0}}, "cases": cases}))
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fit_confidence.py"), str(dev)], capture_output=True, text=True, check=True).stdout
    a = float(out.split("PLATT_A = ")[1].split()[0])
    b = float(out.split("PLATT_B = ")[1].split()[0])
    assert a == pytest.approx(2.0, abs=0.25) and b == pytest.approx(-1.0, abs=0.2)
    held = tmp_path / "held.json"
    held.write_text(json.dumps({"meta": {"split": "held"}, "cases": cases}))
    refused = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fit_confidence.py"), str(held)], capture_output=True, text=True)
    assert refused.returncode == 2 and "fit on dev only" in refused.stderr
