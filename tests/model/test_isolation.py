"""workbench.model.isolation: SHAP additivity and agreement with shap; the injected feature ranks first, with and without the model."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import shap
import torch

from tests.conftest import sample_case, sample_cases, with_nan_snapshots
from tests.model.test_activations import Standardised
from tests.model.test_diff import write_malicious_pt, write_timeline_case
from workbench.case.loader import open_case
from workbench.errors import CaseError, SnapshotError, WorkbenchError
from workbench.model.isolation import attribution_shift, isolate_features, permutation_shap
from workbench.windows import Window

torch.set_num_threads(2)

FEATURE_CASES = [p for p in sample_cases() if json.loads((p / "truth.json").read_text())["kind"] == "feature"]
ADDITIVITY_TOL = 1e-4  # logits; float32 forward passes of the same rows in different batch shapes differ by ~1e-6


def _logit_fn(model: torch.nn.Module):
    def f(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(np.asarray(x, np.float32))).reshape(-1).double().numpy()
    return f


def _windows(path: Path) -> tuple[Window, Window]:
    case = open_case(path)
    onset = datetime.fromisoformat(json.loads((path / "truth.json").read_text())["onset"].replace("Z", "+00:00"))
    return Window(onset - timedelta(hours=24), onset), Window(onset, case.end)


# ---------------------------------------------------------------- SHAP values
def test_shap_values_add_up_for_a_model_with_non_module_nonlinearities():
    torch.manual_seed(0)
    model = Standardised().eval()  # sign * log1p outside any module: DeepExplainer misses additivity here
    rng = np.random.default_rng(0)
    x = (rng.lognormal(size=(300, 3)) * rng.choice([-1, 1], size=(300, 3))).astype(np.float32)
    phi, expected = permutation_shap(_logit_fn(model), x[:200], x[200:232])
    f = _logit_fn(model)(x[:200])
    assert expected == pytest.approx(_logit_fn(model)(x[200:232]).mean(), abs=1e-6)
    np.testing.assert_allclose(phi.sum(1) + expected, f, atol=ADDITIVITY_TOL)


def test_shap_values_of_a_linear_model_are_exact():
    w = np.array([0.5, -2.0, 1.0])
    rng = np.random.default_rng(1)
    x, bg = rng.normal(size=(50, 3)), rng.normal(size=(16, 3))
    phi, expected = permutation_shap(lambda a: a @ w, x, bg, dtype=np.float64)
    np.testing.assert_allclose(phi, w * (x - bg.mean(0)), atol=1e-12)
    assert expected == pytest.approx(float((bg @ w).mean()))


def test_shap_values_agree_with_shaps_kernel_explainer():
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).eval()
    rng = np.random.default_rng(2)
    x, bg = rng.normal(size=(20, 4)).astype(np.float32), rng.normal(size=(8, 4)).astype(np.float32)
    f = _logit_fn(model)
    # with 4 features KernelExplainer enumerates all 16 coalitions: exact interventional SHAP values
    # (shap.explainers.Exact agrees to 1e-8 but spends ~10 s compiling numba code)
    exact = shap.KernelExplainer(f, bg).shap_values(x, nsamples=100, silent=True)
    # every background row repeated: many random feature orders per row, so the estimate converges
    phi, _ = permutation_shap(f, x, np.repeat(bg, 100, axis=0), seed=3)
    scale = np.abs(exact).mean()
    assert np.abs(phi - exact).max() < 0.1 * scale
    assert np.corrcoef(phi.ravel(), exact.ravel())[0, 1] > 0.99


# ---------------------------------------------------------------- the sample cases
@pytest.mark.parametrize("method", ["model", "surrogate"])
@pytest.mark.parametrize("path", FEATURE_CASES, ids=lambda p: p.name)
def test_injected_feature_ranks_first(path, method):
    truth = json.loads((path / "truth.json").read_text())
    base, inc = _windows(path)
    iso = isolate_features(open_case(path), base, inc, method=method)
    assert iso.top == truth["target"], str(iso)
    assert iso.model_free is (method == "surrogate")
    assert iso.method == ("surrogate:treeshap" if method == "surrogate" else "model:shap+swap")
    # additivity of the attributions behind the ranking: permutation SHAP for the model, TreeSHAP for the surrogate
    assert iso.additivity_gap < (ADDITIVITY_TOL if method == "model" else 1e-6)
    top = iso.table.row(0, named=True)
    assert 0 < top["score"] <= 1 and top["rank"] == 1
    if method == "surrogate":
        assert iso.surrogate_r2 > 0.8 and "model-free" in iso.notes[0] and "surrogate" in str(iso)
    json.dumps(iso.to_dict())


def test_upstream_break_ranks_its_features_on_top():
    path = sample_case("upstream_break")
    truth = json.loads((path / "truth.json").read_text())
    base, inc = _windows(path)
    iso = isolate_features(open_case(path), base, inc)
    assert iso.top in truth["details"]["features"]


def test_without_an_ne_regression_the_ranking_says_so():
    path = sample_case("control")
    case = open_case(path)
    window = Window.hours(case.start + timedelta(hours=30), 6)
    iso = isolate_features(case, window, window, method="surrogate")
    assert iso.table["ne_recovered"].null_count() == iso.table.height
    assert any("did not regress" in n for n in iso.notes)


def test_swap_uses_the_snapshot_that_served_each_row_or_the_one_given():
    path = sample_case("feature_scale_bug")
    base, inc = _windows(path)
    case = open_case(path)
    fixed = isolate_features(case, base, inc, snapshot=case.snapshots[0].snapshot_id)
    assert fixed.snapshot == case.snapshots[0].snapshot_id and fixed.model_shift == pytest.approx(0.0)
    assert fixed.top == json.loads((path / "truth.json").read_text())["target"]


# ---------------------------------------------------------------- refusals and errors
def test_malicious_pt_is_refused_by_isolation_without_running(tmp_path):
    root = write_timeline_case(tmp_path / "case", n=6)
    case = open_case(root)
    sentinel = tmp_path / "pwned"
    write_malicious_pt(root / "snapshots" / "s3.pt", sentinel)
    window = Window.hours(case.start, 48)
    with pytest.raises(SnapshotError, match="nothing was run"):
        isolate_features(case, window, window, method="model", snapshot="s3")
    with pytest.raises(SnapshotError, match="nothing was run"):
        attribution_shift(case, "s2", "s3", window)
    assert not sentinel.exists()


def test_method_errors(small_case, tmp_path):
    case = open_case(small_case)
    w = Window.hours(case.start, 24)
    with pytest.raises(WorkbenchError, match="did you mean 'model'"):
        isolate_features(case, w, w, method="modle")
    bare = Path(shutil.copytree(small_case, tmp_path / "bare"))
    (bare / "model.py").unlink()
    with pytest.raises(CaseError, match="method='surrogate'"):
        isolate_features(open_case(bare), w, w, method="model")
    with pytest.raises(CaseError, match="no served rows"):
        isolate_features(case, w, Window.hours("2030-01-01T00:00Z", 1))


# ---------------------------------------------------------------- attribution shift between snapshots
def test_attribution_shift_between_snapshots(tmp_path):
    case = open_case(write_timeline_case(tmp_path / "case", n=7, bad=6, layer="0.weight"))
    window = Window.hours(case.start, 24)
    same = attribution_shift(case, "s4", "s4", window)
    assert same.spearman == 1.0 and (same.table["delta"] == 0).all()
    shifted = attribution_shift(case, "s5", "s6", window)  # the first layer scaled x4: every feature's effect grows
    assert (shifted.table["importance_b"] > shifted.table["importance_a"]).all()
    assert set(shifted.table.columns) >= {"feature", "rank_a", "rank_b", "rank_change"}
    json.dumps(shifted.to_dict())
    assert "rank correlation" in str(shifted)


def test_isolation_table_columns(tmp_path):
    path = sample_case("feature_stale")
    base, inc = _windows(path)
    iso = isolate_features(open_case(path), base, inc, sample=4000)
    assert iso.table.columns[:3] == ["feature", "rank", "score"]
    assert {"prediction_shift_share", "attribution_delta", "loss_share", "ne_recovered", "drift_share"} <= set(iso.table.columns)
    assert iso.rows_incident <= 4000 and iso.table["rank"].to_list() == list(range(1, iso.table.height + 1))
    assert iso.table.filter(pl.col("feature") == iso.top)["loss_share"][0] > 0.3


def test_a_snapshot_that_scores_nan_leaves_the_features_to_the_model_free_reading(tmp_path):
    """A NaN in the served snapshots' weights: the model scores every incident row NaN, so it cannot say which input
    moved them (the NE of NaN logits raised numpy warnings and the check failed); the features are read model-free,
    and the diagnosis names the snapshot with a rollback, no check raising."""
    from workbench.data.onset import detect_onset
    from workbench.rca.diagnosis import diagnose

    case = open_case(sample_case("snapshot_corrupt"))
    truth = json.loads((case.root / "truth.json").read_text())
    ids = [s.snapshot_id for s in case.snapshots]
    nan_case = open_case(with_nan_snapshots(case.root, tmp_path / "case", ids[ids.index(truth["target"]):]))
    onset = detect_onset(nan_case)
    with np.errstate(invalid="raise"):
        iso = isolate_features(nan_case, onset.baseline, onset.incident)
        d = diagnose(nan_case)
    assert iso.model_free and any("no finite prediction" in n for n in iso.notes)
    assert not d.errors, d.errors
    assert (d.top.kind, d.top.target) == ("snapshot", truth["target"]) and d.top.mitigations[0].action == "rollback"
