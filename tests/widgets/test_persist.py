"""The investigation's state lives in the notebook's outputs: a shared notebook reopens where it stood.

The round trip is run for real: a kernel (nbclient) runs ``investigate()``, a later
cell changes the state (as a click would), the executed notebook is written to
disk, and ``investigate()`` on that notebook restores it. (The browser test does
the same in JupyterLab: click, save, restart, run.)
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT
from tests.widgets.test_helpers import make_diagnosis
from workbench import open_case
from workbench_widgets import Investigation, investigate
from workbench_widgets._persist import MIME, bundle, find_saved_state, notebook_path


def _notebook_with(outputs: list[dict]) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("investigate(case)")
    cell.outputs = [nbformat.v4.new_output("display_data", data=o) for o in outputs]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# x"), cell])


def test_bundle_holds_the_state_and_a_readable_line():
    s = Investigation(case="c", slice="country=BR")
    s.choose("upstream:table:t", "accepted")
    b = bundle(s)
    assert b[MIME]["choices"] == {"upstream:table:t": "accepted"}
    assert b["text/plain"].startswith("Investigation of c: 0 node(s) opened; 1 accepted")


def test_find_saved_state_takes_the_last_record_of_the_same_case(tmp_path):
    first, second, other = Investigation(case="c"), Investigation(case="c", slice="country=IN"), Investigation(case="d")
    nb = _notebook_with([bundle(first), {"text/plain": "noise"}, bundle(second), bundle(other)])
    path = tmp_path / "a.ipynb"
    nbformat.write(nb, path)
    assert find_saved_state("c", path)["slice"] == "country=IN"
    assert find_saved_state("d", path)["case"] == "d"
    assert find_saved_state("e", path) is None
    assert find_saved_state("c", tmp_path / "missing.ipynb") is None
    (tmp_path / "bad.ipynb").write_text("{not json")
    assert find_saved_state("c", tmp_path / "bad.ipynb") is None


def test_notebook_path_from_the_server_environment(tmp_path, monkeypatch):
    path = tmp_path / "triage.ipynb"
    path.write_text("{}")
    monkeypatch.setenv("JPY_SESSION_NAME", str(path))
    assert notebook_path() == path
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "gone.ipynb"))
    assert notebook_path() is None


def test_investigate_restores_from_the_notebook(small_case_template, tmp_path):
    case = open_case(small_case_template)
    saved = Investigation(case=case.name, node="lineage", path=["prediction_quality", "lineage"],
                          choices={"upstream:table:t": "rejected"}, notes={"lineage": "not this one"}, view="lineage")
    path = tmp_path / "shared.ipynb"
    nbformat.write(_notebook_with([bundle(saved)]), path)
    app = investigate(case, diagnosis=make_diagnosis(case), notebook=path)
    assert app.origin == "restored from this notebook"
    assert app.state.choices == {"upstream:table:t": "rejected"} and app.state.view == "lineage"
    assert app.tabs.active == 5 and app.views["tree"]._details["lineage"].visible
    assert app.views["tree"]._note_widget("lineage").value == "not this one"


RUN = """\
import sys
sys.path.insert(0, {root!r})
from tests.widgets.test_helpers import make_diagnosis
from workbench import open_case
from workbench_widgets import investigate
case = open_case({case!r})
app = investigate(case, diagnosis=make_diagnosis(case){extra})
"""


def _execute(nb: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, errors[0]["traceback"][-1]
    return nb


def _records(nb: nbformat.NotebookNode) -> list[dict]:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            data = o.get("data", {}).get(MIME)
            if data is not None:
                out.append(data if isinstance(data, dict) else json.loads(data))
    return out


@pytest.mark.slow
def test_round_trip_through_a_real_kernel(small_case_template, tmp_path):
    """Change the state in a live kernel, save the notebook, reopen it: the same state."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(RUN.format(root=str(ROOT), case=str(small_case_template), extra="")),
        nbformat.v4.new_code_cell("app.state.open('lineage')\napp.state.choose('upstream:table:t', 'accepted')\n"
                                  "app.state.slice = 'country=BR'\napp.state.note('lineage', 'paged the owners')"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    _execute(nb, tmp_path)
    records = _records(nb)
    assert len(records) == 1  # one record, updated in place by display id
    assert records[0]["choices"] == {"upstream:table:t": "accepted"} and records[0]["slice"] == "country=BR"
    path = tmp_path / "investigation.ipynb"
    nbformat.write(nb, path)

    # Reopened elsewhere (any process): the saved outputs alone restore the investigation.
    case = open_case(small_case_template)
    app = investigate(case, diagnosis=make_diagnosis(case), notebook=path)
    assert app.origin == "restored from this notebook"
    state = app.state.to_dict()
    assert state["choices"] == {"upstream:table:t": "accepted"} and state["notes"] == {"lineage": "paged the owners"}
    assert state["node"] == "lineage" and state["slice"] == "country=BR"
