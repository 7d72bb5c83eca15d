"""workbench.model.activations: hooks record what each layer did; two snapshots diverge first where one was corrupted."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch

from tests.conftest import sample_case
from tests.model.test_diff import write_timeline_case
from workbench import compare_activations, default_batch, trace_activations, unit_importance
from workbench.case.loader import open_case
from workbench.errors import WorkbenchError

torch.set_num_threads(2)


class Standardised(torch.nn.Module):
    """Normalisation buffers used in forward, outside any leaf module (like the sample model)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(3))
        self.register_buffer("std", torch.ones(3))
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((torch.sign(x) * torch.log1p(x.abs()) - self.mean) / self.std).squeeze(-1)


def _x(n: int = 256, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)


def test_trace_lists_layers_in_forward_order_with_their_parameters():
    torch.manual_seed(0)
    model = Standardised()
    stats = trace_activations(model, _x())
    t = stats.table
    assert t["layer"].to_list() == ["(input to net.0)", "net.0", "net.1", "net.2"]
    assert t["parameter"].to_list() == ["mean, std", "net.0", "net.0", "net.2"]
    assert t["units"].to_list() == [3, 4, 4, 1]
    json.dumps(stats.to_dict())


def test_trace_counts_dead_units_and_nonfinite_values():
    torch.manual_seed(0)
    model = Standardised()
    with torch.no_grad():
        model.net[0].weight[:2] = 0.0
        model.net[0].bias[:2] = -1.0  # two ReLUs that never fire
    t = trace_activations(model, _x()).table.to_dicts()
    assert t[1]["dead_units"] == 2 and t[2]["dead_units"] == 2 and t[2]["dead_share"] == 0.5
    with torch.no_grad():
        model.net[2].bias[0] = float("nan")
    t = trace_activations(model, _x()).table
    assert t.filter(pl.col("layer") == "net.2")["nonfinite"][0] == 256
    assert model.training is True  # traced in eval mode, then left in the mode it came in


def test_unit_importance_is_gradient_times_activation():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    x = _x()
    got = unit_importance(model, x, "1").sort("unit")
    with torch.no_grad():
        act = model[1](model[0](torch.from_numpy(x)))
    expected = (act * model[2].weight[0]).abs().mean(0).detach().numpy()  # d(sum of outputs)/d(unit) = w_unit
    np.testing.assert_allclose(got["importance"].to_numpy(), expected, rtol=1e-5)
    # a parameter name and a pseudo-layer resolve too; a typo gets a suggestion
    assert unit_importance(model, x, "2.weight").height == 1
    assert unit_importance(Standardised(), x, "(input to net.0)").height == 3
    with pytest.raises(WorkbenchError, match="did you mean"):
        unit_importance(model, x, "22")


@pytest.fixture(scope="module")
def corrupt_case(tmp_path_factory):
    return open_case(write_timeline_case(tmp_path_factory.mktemp("act") / "case", n=14, bad=10, layer="2.weight"))


def test_first_divergent_layer_is_the_corrupted_one(corrupt_case):
    diff = compare_activations(corrupt_case, "s9", "s10")
    assert diff.first_divergent_layer == "2" and diff.first_divergent_parameter == "2.weight"
    assert not diff.fallback
    layers = diff.table.filter(pl.col("diverged"))["layer"].to_list()
    assert "0" not in layers and "1" not in layers  # upstream of the corruption nothing moved
    assert diff.units is not None and diff.units.height == 1
    json.dumps(diff.to_dict())
    # across ten refreshes (stable -> bad) the triangle-inequality allowance is conservative:
    # benign layers stay far below their gate and the corrupted one has the largest z
    far = compare_activations(corrupt_case, "s0", "s10").table
    assert far.sort("z", descending=True)["layer"][0] == "2"
    assert (far.filter(pl.col("layer") != "2")["z"] < 0).all()


def test_benign_refresh_does_not_diverge(corrupt_case):
    diff = compare_activations(corrupt_case, "s2", "s3")
    assert diff.first_divergent_layer is None and diff.units is None
    assert "no layer diverges" in str(diff)


def test_default_batch_prefers_training_rows(corrupt_case):
    x = default_batch(corrupt_case, n=500)
    assert x.shape == (500, 3) and x.dtype == np.float32


def test_sample_corrupt_snapshot_layer():
    path = sample_case("snapshot_corrupt")
    truth = json.loads((path / "truth.json").read_text())
    case = open_case(path)
    ids = [s.snapshot_id for s in case.snapshots]
    bad = ids.index(truth["target"])
    diff = compare_activations(case, ids[bad - 1], truth["target"])
    assert diff.first_divergent_parameter == truth["layer"], str(diff)
