"""The notebook and the ``panel serve`` script the browser tests open, written from code into a temporary folder.

The notebook is what a user types: one import, one call. It never lives in the
repository (``notebooks/`` is the template set, tested elsewhere).
"""

from __future__ import annotations

from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "sample_data" / "cases" / "upstream_break"


def write_notebook(path: Path, case: Path = CASE) -> Path:
    cells = [
        nbformat.v4.new_markdown_cell(f"# Why did `{case.name}` go bad?\nOne call opens the guided investigation."),
        nbformat.v4.new_code_cell(f"from workbench_widgets import investigate\n\napp = investigate({str(case)!r})\napp"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def write_app(path: Path, case: Path = CASE) -> Path:
    path.write_text(f'"""panel serve {path.name}: the investigation as a web app."""\n'
                    "from workbench_widgets import investigate\n\n"
                    f"investigate({str(case)!r}).servable(title='workbench: {case.name}')\n")
    return path
