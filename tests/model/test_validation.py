"""workbench.model.validation: metrics against sklearn, gates on known-bad snapshots, the CLI's exit codes."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score

from tests.conftest import sample_case
from tests.model.test_diff import write_timeline_case
from workbench.case.loader import open_case
from workbench.cli import main
from workbench.errors import WorkbenchError
from workbench.metrics import auc, auc_se, normalized_entropy
from workbench.model.validation import validate_snapshot

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def corrupt_case(tmp_path_factory):
    return open_case(write_timeline_case(tmp_path_factory.mktemp("val") / "case", bad=6, layer="0.weight"))


@pytest.fixture(scope="module")
def nan_case(tmp_path_factory):
    return open_case(write_timeline_case(tmp_path_factory.mktemp("valnan") / "case", n=6, bad=5, layer="2.bias", mode="nan"))


# ---------------------------------------------------------------- metrics against independent implementations
def test_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = (rng.random(5000) < 0.2).astype(float)
    p = np.clip(0.2 + 0.3 * (y - 0.2) + rng.normal(0, 0.1, 5000), 0.01, 0.99)
    p[:100] = 0.5  # ties
    base = y.mean()
    entropy = -(base * math.log(base) + (1 - base) * math.log(1 - base))
    assert normalized_entropy(p, y) == pytest.approx(log_loss(y, p) / entropy, rel=1e-9)
    assert auc(p, y) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert math.isnan(auc(np.arange(4.0), np.zeros(4)))


def test_hanley_mcneil_se_matches_the_bootstrap():
    rng = np.random.default_rng(1)
    y = (rng.random(4000) < 0.3).astype(float)
    s = rng.normal(size=4000) + 1.2 * y
    boot = []
    for _ in range(300):
        i = rng.integers(0, 4000, 4000)
        boot.append(auc(s[i], y[i]))
    a = auc(s, y)
    assert auc_se(a, int(y.sum()), int(4000 - y.sum())) == pytest.approx(np.std(boot), rel=0.2)


# ---------------------------------------------------------------- gates
def test_corrupt_snapshot_fails_with_reasons_and_benign_ones_pass(corrupt_case):
    bad = validate_snapshot(corrupt_case, "s6")
    assert not bad.passed and bad.reference_id == "s0"
    assert bad.reasons[0].startswith("NE ") and "beyond the tolerance" in bad.reasons[0]
    ne = bad.metrics.filter(pl.col("metric") == "ne").row(0, named=True)
    assert ne["delta"] > ne["tolerance"] > 0 and ne["passed"] is False
    assert "labelled served rows before" in bad.holdout
    for sid in ("s1", "s4", "s5"):
        good = validate_snapshot(corrupt_case, sid)
        assert good.passed, str(good)
    json.dumps(bad.to_dict())
    assert "FAIL" in str(bad)


def test_nan_predictions_fail_the_nan_gate(nan_case):
    result = validate_snapshot(nan_case, "s5")
    assert not result.passed
    assert "NaN/Inf" in result.reasons[0]
    assert result.metrics.filter(pl.col("metric") == "nan_rate")["candidate"][0] == 1.0


def test_the_reference_validates_against_itself(corrupt_case):
    result = validate_snapshot(corrupt_case, "s0")
    assert result.passed and result.reference_id == "s0"
    assert "training.parquet" in result.holdout  # nothing was served before the first snapshot
    assert "candidate is the reference" in result.reasons[0]


def test_explicit_holdout_and_reference(corrupt_case):
    rows = corrupt_case.predictions.select("f_a", "f_b", "f_c", "label").collect()
    result = validate_snapshot(corrupt_case, "s7", holdout=rows, reference="s5", sample=3000)
    from workbench.model.validation import CLASS_ROWS, _sized

    # a given holdout is sized like the default one: ``sample`` rows at least, more where the rarer class is rare
    wanted = _sized(float(rows.height), float(rows["label"].sum()), 3000, 3)
    assert wanted > 3000 and min(rows["label"].sum(), rows.height - rows["label"].sum()) * wanted / rows.height >= CLASS_ROWS - 1
    assert result.reference_id == "s5" and result.rows == wanted and "given holdout" in result.holdout
    assert not result.passed  # s7 warm-started from the corrupt s6
    with pytest.raises(WorkbenchError, match="Hint: pass the case's feature columns"):
        validate_snapshot(corrupt_case, "s7", holdout=rows.drop("f_b"))


# ---------------------------------------------------------------- CLI
def test_cli_exit_codes(corrupt_case, capsys):
    root = str(corrupt_case.root)
    assert main(["validate", root, "--snapshot", "s6", "-q"]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert main(["validate", root, "--snapshot", "s4", "--json", "-q"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["passed"] is True and out["snapshot_id"] == "s4"
    assert main(["validate", root, "--snapshot", "s66", "-q"]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert main(["snapshots", root, "--json", "-q"]) == 0
    timeline = json.loads(capsys.readouterr().out)
    assert timeline["first_bad"] == "s6"


# ---------------------------------------------------------------- sample cases
def test_sample_bad_snapshots_fail():
    for name in ("snapshot_bad_data", "snapshot_corrupt"):
        path = sample_case(name)
        truth = json.loads((path / "truth.json").read_text())
        result = validate_snapshot(open_case(path), truth["target"])
        assert not result.passed, str(result)


def test_sample_benign_snapshots_pass():
    case = open_case(sample_case("control"))
    for snap in case.snapshots:
        assert validate_snapshot(case, snap.snapshot_id).passed
    case = open_case(sample_case("snapshot_bad_data"))
    target = json.loads((case.root / "truth.json").read_text())["target"]
    before = [s.snapshot_id for s in case.snapshots if s.published_at < case.snapshot(target).published_at]
    assert validate_snapshot(case, before[-1]).passed  # the refresh right before the bad one


def test_a_calibration_flip_across_one_fails_the_gate_and_a_move_towards_one_passes():
    """Same rows, same labels: the candidate made the whole move. 1.06 -> 0.93 is 0.13 worse (the old reading,
    distance from 1 alone, made it 0.014 worse, inside the tolerance of 0.016); 1.06 -> 0.98 ends closer to 1 and
    passes."""
    from workbench.model.validation import _verdict

    rng = np.random.default_rng(5)
    n = 200_000
    logit = rng.normal(-2.0, 1.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    p_true = 1 / (1 + np.exp(-logit))
    p_r = p_true * 1.06 * y.mean() / p_true.mean()
    flipped = _verdict("cand", "ref", y, p_r, p_r * 0.93 / 1.06, "test rows", seed=0)
    toward = _verdict("cand", "ref", y, p_r, p_r * 0.98 / 1.06, "test rows", seed=0)
    cal = {v: r.filter(pl.col("metric") == "calibration_ratio").row(0, named=True)
           for v, r in (("flip", flipped.metrics), ("toward", toward.metrics))}
    assert cal["flip"]["reference"] == pytest.approx(1.06, abs=1e-6) and cal["flip"]["candidate"] == pytest.approx(0.93, abs=1e-6)
    assert cal["flip"]["passed"] is False and not flipped.passed
    assert any("calibration ratio 0.930 vs 1.060" in r and "worse by 0.131" in r and "beyond" in r for r in flipped.reasons)
    assert cal["toward"]["passed"] is True
    # delta is the worsening in the tolerance's own log units (it was the ratio's difference, -0.13 against 0.016)
    assert cal["flip"]["delta"] == pytest.approx(0.131, abs=1e-3) and cal["flip"]["delta"] > cal["flip"]["tolerance"]
    assert cal["toward"]["delta"] < 0  # better: closer to 1


def test_the_holdout_holds_enough_of_the_rarer_class_to_see_a_calibration_step():
    """At a 0.2 % click rate 50,000 rows hold about 100 clicks: the calibration gate's tolerance (3.5 SE of its log) is
    about 0.35, and a snapshot whose predictions are 1.4 times too high (0.34) passed (an outside test's). The holdout
    is sized to hold 1,000 of the rarer class, up to MAX_HOLDOUT rows; there the same snapshot fails."""
    from types import SimpleNamespace

    from workbench.model.validation import CLASS_ROWS, MAX_HOLDOUT, _verdict, holdout_size

    def profile(rate: float) -> SimpleNamespace:
        periods = pl.datetime_range(datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC), "15m", eager=True)
        return SimpleNamespace(features=("a", "b"), profile=pl.DataFrame({"period": periods, "labeled": [10_000] * len(periods),
                                                                          "positives": [10_000 * rate] * len(periods)}))

    before = datetime(2026, 6, 3, tzinfo=UTC)
    assert holdout_size(profile(0.05), before) == 50_000  # 1,000 clicks in 20,000 rows: the default stands
    assert holdout_size(profile(0.01), before) == CLASS_ROWS * 100
    assert holdout_size(profile(0.002), before) == MAX_HOLDOUT
    assert holdout_size(profile(0.9), before) == 50_000  # the rarer class is the non-click: 5,000 of them
    wide = SimpleNamespace(features=tuple(f"f{i}" for i in range(300)), profile=profile(0.002).profile)
    assert holdout_size(wide, before) == 50_000_000 // 301  # the growth capped at the samples' 50M values
    rng = np.random.default_rng(3)
    verdicts = {}
    for n in (50_000, MAX_HOLDOUT):
        logit = rng.normal(-6.8, 1.0, n)
        p = 1 / (1 + np.exp(-logit))
        y = (rng.random(n) < p).astype(float)
        verdicts[n] = _verdict("cand", "ref", y, p, np.minimum(p * 1.4, 1.0), "test rows", seed=0)
    assert verdicts[50_000].passed and not verdicts[MAX_HOLDOUT].passed, {n: v.reasons for n, v in verdicts.items()}
