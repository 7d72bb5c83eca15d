"""Template notebooks: committed without outputs, one per workflow, and each runs on every kind of case.

A real kernel (papermill) runs the quickstart and the triage template on their incident
sample cases. Every template runs on every kind of case — its incident, healthy, too
sparse to test, only a serving log — in-process, in one IPython shell (the parameter cell replaced), and the test
reads what they printed: each must say in words what it found (nothing regressed, too
sparse to test, which files are missing; on the incident, its true cause). In-process, one case is diagnosed once and
its widget built once for all notebooks (the calls are the same); a real kernel per
notebook and kind would cost about 30 s each.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest

from tests.conftest import ROOT, SAMPLES, tree_digest
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


# In a real kernel (papermill): the notebook a user opens first and the one that writes a report (10-50 s each).
# Every template runs on the incident it was written for in-process below, with the other kinds of case.
REAL_KERNEL = [p for p in TEMPLATES if p.stem in ("quickstart", "triage")]


def _default_case(path: Path) -> Path:
    return SAMPLES / nbformat.read(path, as_version=4).metadata["workbench"]["default_case"]


@pytest.mark.parametrize("path", REAL_KERNEL, ids=lambda p: p.stem)
def test_notebook_runs_and_names_the_root_cause(path, tmp_path):
    case = _default_case(path)
    truth = json.loads((case / "truth.json").read_text())
    out = tmp_path / path.name
    before = tree_digest(NOTEBOOKS)
    run_dir = tmp_path / "run"  # the triage template writes its report into the working directory
    run_dir.mkdir()
    papermill.execute_notebook(str(path), str(out), parameters={"case": str(case)}, cwd=str(run_dir),
                               kernel_name="python3", progress_bar=False)
    text = _outputs(nbformat.read(out, as_version=4))
    assert truth["target"] in text, f"{path.name} did not name {truth['target']}"
    assert tree_digest(NOTEBOOKS) == before, "running a template left files in notebooks/"


# ---------------------------------------------------------------- the other kinds of case, in-process
KINDS = ("incident", "healthy", "too_sparse", "serving_log_only")
# what each kind's run must say, in words (every needle must appear)
SAYS = {
    "healthy": (("Nothing regressed", "anomaly: none"),),
    "too_sparse": (("too sparse",),),
    "serving_log_only": (("no snapshots/index.csv",), ("no lineage.json",)),
}


@pytest.fixture(scope="module")
def kinds(tmp_path_factory) -> dict[str, Path]:
    """A healthy case, a case too sparse to test and one with only its serving log."""
    import proving_ground
    from workbench import open_case

    sparse = proving_ground.generate(proving_ground.draw("sparse", "dev", seed=3, max_rows=2000),
                                     tmp_path_factory.mktemp("sparse") / "case")
    assert open_case(sparse).grain.grain is None
    bare = tmp_path_factory.mktemp("bare") / "case"
    bare.mkdir()
    shutil.copy(SAMPLES / "upstream_break" / "predictions.parquet", bare)
    return {"healthy": SAMPLES / "control", "too_sparse": sparse, "serving_log_only": bare}


@pytest.fixture(scope="module")
def shell() -> Iterator[Any]:
    """One IPython shell for every in-process run; ``diagnose`` and ``investigate`` answer once per case."""
    from IPython.core.interactiveshell import InteractiveShell

    import workbench
    import workbench_widgets

    diagnosed: dict[Path, Any] = {}
    apps: dict[Path, Any] = {}
    real_diagnose, real_investigate = workbench.diagnose, workbench_widgets.investigate

    def diagnose(case: Any, **kw: Any) -> Any:
        root = Path(getattr(case, "root", case)).resolve()
        if kw or root not in diagnosed:
            return diagnosed.setdefault(root, real_diagnose(case, **kw))
        return diagnosed[root]

    def investigate(case: Any, **kw: Any) -> Any:
        root = Path(getattr(case, "root", case)).resolve()
        if root not in apps:
            apps[root] = real_investigate(case, **kw)
        return apps[root]

    main = sys.modules["__main__"]  # the shell puts its own module there; multiprocessing's spawn needs the real one
    shell = InteractiveShell.instance()
    # A widget is built with every view, but not rendered into a Bokeh document here: rendering is what the
    # real-kernel runs above and tests/ui check, and it would cost ~10 s per display.
    shell.display_formatter.mimebundle_formatter.enabled = False
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(workbench, "diagnose", diagnose)
        mp.setattr(workbench_widgets, "investigate", investigate)
        yield shell
    InteractiveShell.clear_instance()
    sys.modules["__main__"] = main


def _run_in_process(shell: Any, path: Path, case: Path, cwd: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    out = io.StringIO()
    here = Path.cwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                parameters = "parameters" in cell.metadata.get("tags", [])
                result = shell.run_cell(f"case = {str(case)!r}" if parameters else cell.source, store_history=False)
                if not result.success:
                    raise AssertionError(f"{path.name}, cell {i} failed on {case}:\n{cell.source}\n\n{out.getvalue()[-3000:]}")
    finally:
        os.chdir(here)
        shell.reset(new_session=False)
    return out.getvalue()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_notebook_runs_on_every_kind_of_case_and_says_what_it_found(path, kind, kinds, shell, tmp_path):
    before = tree_digest(NOTEBOOKS)
    case = _default_case(path) if kind == "incident" else kinds[kind]
    text = _run_in_process(shell, path, case, tmp_path)
    says = SAYS[kind] if kind != "incident" else ((json.loads((case / "truth.json").read_text())["target"],),)
    for needles in says:
        assert any(n in text for n in needles), f"{path.name} on the {kind} case never says {needles}:\n{text[-3000:]}"
    assert "Traceback" not in text
    assert tree_digest(NOTEBOOKS) == before, "running a template left files in notebooks/"
