"""A case's ``model.py`` that cannot be used is the user's input, not a workbench bug (issue 14).

Each situation is built as a user would meet it — a sample case with a ``model.py``
that raises, fails to import, returns the wrong thing, or builds an architecture the
snapshots do not fit — and run through the CLI: the model checks are skipped with one
reason naming ``model.py`` and the exception, nothing is listed under ``errors``, and
stderr carries no traceback. The raising factory runs on the incident whose snapshot
broke, so every check that reads the model (the snapshot timeline's probe, the swap,
isolation, serving consistency) runs; the others on the healthy case, which is cheaper
and goes through the same gate (:func:`workbench.model.load.model_problem`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import sample_case
from workbench import open_case
from workbench.model.load import build_model, forbid_model_code, model_problem
from workbench.rca.checks import default_tree
from workbench.rca.context import Context

MODEL_CHECKS = ("snapshot_validation", "activation_trace")
# sample case, model.py source, and what the skip reason must say besides naming model.py
SITUATIONS = {
    "factory_raises": ("snapshot_corrupt", 'def build():\n    raise RuntimeError("weights server unreachable")\n',
                       "build() raised RuntimeError: weights server unreachable"),
    "import_fails": ("control", "import torch\nimport ctr_internal_layers  # not installed here\n\ndef build():\n    return None\n",
                     "importing it failed: ModuleNotFoundError: No module named 'ctr_internal_layers'"),
    "wrong_type": ("control", 'def build():\n    return {"net.0.weight": None}\n', "build() returned dict, not a torch.nn.Module"),
    "keys_mismatch": ("control", "import torch\n\ndef build():\n    return torch.nn.Sequential(torch.nn.Linear(24, 1))\n",
                      "its keys do not match the model built by model.py"),
}


def _case_with_model(root: Path, source: str, sample: str = "snapshot_corrupt") -> Path:
    case = Path(shutil.copytree(sample_case(sample), root / "case"))
    (case / "model.py").write_text(source)
    return case


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """`workbench diagnose --json` on every situation, run side by side (each takes a few seconds)."""
    procs = {}
    for name, (sample, source, _) in SITUATIONS.items():
        case = _case_with_model(tmp_path_factory.mktemp(name), source, sample)
        procs[name] = (subprocess.Popen([sys.executable, "-m", "workbench.cli", "diagnose", str(case), "--json"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), case)
    runs = {}
    for name, (proc, case) in procs.items():
        out, err = proc.communicate(timeout=600)
        runs[name] = (subprocess.CompletedProcess(proc.args, proc.returncode, out, err), case)
    return runs


@pytest.mark.parametrize("situation", SITUATIONS)
def test_an_unusable_model_py_skips_the_model_checks_with_one_reason(situation, cli_runs):
    run, _ = cli_runs[situation]
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert "ERROR" not in run.stderr, run.stderr
    answer = json.loads(run.stdout)
    assert answer["errors"] == []
    reasons = {s["check"]: s["reason"] for s in answer["skipped"]}
    sample, _, expected = SITUATIONS[situation]
    for check in MODEL_CHECKS:
        assert check in reasons, answer["skipped"]
        assert "model.py" in reasons[check] and expected in reasons[check], reasons[check]
    assert len({reasons[c] for c in MODEL_CHECKS}) == 1  # one message, the same for every model check
    if sample == "snapshot_corrupt":  # the model-free checks still ran, and found the broken snapshot from its weights
        assert answer["anomaly"]["detected"]
        assert answer["root_causes"] and answer["root_causes"][0]["kind"] == "snapshot"


def test_the_factory_runs_once_per_case(tmp_path):
    calls = tmp_path / "calls.txt"
    source = (f"from pathlib import Path\n\ndef build():\n    with Path({str(calls)!r}).open('a') as f:\n"
              "        f.write('x')\n    raise ValueError('no GPU here')\n")
    case = open_case(_case_with_model(tmp_path, source, "control"))
    ctx = Context(case)
    tree = default_tree()
    reasons = {ctx.missing(tree.nodes[name]) for name in MODEL_CHECKS}
    assert not ctx.has("model") and not ctx.has("model")
    assert reasons == {"model.py: build() raised ValueError: no GPU here"}
    assert calls.read_text() == "x"


def test_a_forbidden_model_py_is_never_imported(tmp_path):
    marker = tmp_path / "imported"
    source = f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n\ndef build():\n    return None\n"
    case = open_case(_case_with_model(tmp_path, source, "control"))
    forbid_model_code(case, "the operator did not allow model code for this root")
    ctx = Context(case)
    assert not ctx.has("model")
    assert ctx.missing(default_tree().nodes["snapshot_validation"]) == "the operator did not allow model code for this root"
    with pytest.raises(Exception, match="not run: the operator did not allow"):
        build_model(case)
    assert not marker.exists()
    assert model_problem(open_case(case.root)) is not None  # another opening of the same directory decides for itself
    assert marker.exists()


def test_a_working_model_py_has_no_problem(tmp_path):
    case = open_case(sample_case("snapshot_corrupt"))
    assert model_problem(case) is None
    assert Context(case).has("model")
