"""Template notebooks: committed without outputs, one per workflow, and each runs headless on a sample case."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import papermill
import pytest

from tests.conftest import ROOT, SAMPLES
from workbench.rca import default_tree

NOTEBOOKS = ROOT / "notebooks"
TEMPLATES = sorted(p for p in NOTEBOOKS.glob("*.ipynb") if p.stem != "regression_lab")


def test_committed_notebooks_carry_no_outputs():
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them (jupyter nbconvert --clear-output)"


def test_every_workflow_of_the_tree_has_its_notebook():
    covered = {w for p in TEMPLATES for w in nbformat.read(p, as_version=4).metadata["workbench"]["workflows"]}
    assert set(default_tree().nodes) <= covered, sorted(set(default_tree().nodes) - covered)


def test_every_notebook_has_a_case_parameter():
    for path in [*TEMPLATES, NOTEBOOKS / "regression_lab.ipynb"]:
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(cells) == 1 and "case =" in cells[0].source, path.name


def test_notebooks_match_their_generator(tmp_path):
    subprocess.run([sys.executable, str(NOTEBOOKS / "make_notebooks.py"), str(tmp_path)], check=True, capture_output=True)
    for path in TEMPLATES:
        assert (tmp_path / path.name).read_text() == path.read_text(), f"{path.name}: regenerate with notebooks/make_notebooks.py"


def _outputs(nb) -> str:
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", ""))
            texts += [str(v) for k, v in out.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(texts)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_notebook_runs_and_names_the_root_cause(path, tmp_path):
    meta = nbformat.read(path, as_version=4).metadata["workbench"]
    case = SAMPLES / meta["default_case"]
    truth = json.loads((case / "truth.json").read_text())
    out = tmp_path / path.name
    papermill.execute_notebook(str(path), str(out), parameters={"case": str(case)}, cwd=str(NOTEBOOKS),
                               kernel_name="python3", progress_bar=False)
    text = _outputs(nbformat.read(out, as_version=4))
    assert truth["target"] in text, f"{path.name} did not name {truth['target']}"
