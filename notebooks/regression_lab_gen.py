"""Write notebooks/regression_lab.ipynb (no outputs): `python notebooks/regression_lab_gen.py`."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    ("code", '''\
# Parameters (papermill): leave `repo` empty to generate the sample repository in a temporary directory.
case = ""        # unused: the lab measures a repository's training workflow, not a case
repo = ""        # a git repository with the training script
good = ""        # a revision without the regression (default: the sample's first commit)
bad = ""         # a later revision with it (default: the sample's last commit)
command = []     # the workflow, run from a checkout, e.g. ["python", "train.py"]
runs = 6         # measured runs per variant (the CLI's default is 10)
confirm = 6      # confirmation runs per variant when a change is screened'''),
    ("markdown", '''\
# The regression lab: time-to-first-batch A/B tests and bisect

A change can make every training job slower to reach its first batch: an eager heavy import, a blocking
call in data loading. The lab runs two revisions of a training workflow as fresh processes, interleaved
(A B B A ...), times each phase up to the first batch, and declares a regression only when

1. Welch's t-test (on log seconds) and the Mann-Whitney U test both reject at `alpha`,
2. the median change exceeds a threshold set by A/A run-to-run noise for a target false-positive rate, and
3. it reproduces in fresh confirmation runs.

Bisect then finds the first commit of a range that regressed, with about log2(n) such comparisons.'''),
    ("code", '''\
import sys
import tempfile

import holoviews as hv
import panel as pn

from workbench.lab import bisect, compare_revisions, make_sample_repo
from workbench_widgets.lab_view import lab_view

pn.extension(inline=True)
hv.extension("bokeh", inline=True)'''),
    ("code", '''\
if not repo:
    sample = make_sample_repo(tempfile.mkdtemp(prefix="regression-lab-") + "/repo")
    repo, good, bad, command = str(sample.path), sample.good, sample.bad, list(sample.command())
    for commit in sample.commits:
        print(commit.sha[:7], f"{commit.kind:<10}", commit.subject)
command = command or [sys.executable, "train.py"]'''),
    ("markdown", "## A/B: GOOD against BAD\n\nPhases are named after the mark that ends them, e.g. "
                 "`mark(\"data_ready\")` in the script; `first_batch` is the first forward call of the model."),
    ("code", '''\
result = compare_revisions(repo, good, bad, command, runs=runs, confirm=confirm, stop_at_first_batch=True)
print(result)'''),
    ("code", "lab_view(result)"),
    ("markdown", "## Bisect: which commit regressed, and which phase did it slow?"),
    ("code", '''\
found = bisect(repo, good, bad, command, runs=runs, confirm=confirm, stop_at_first_batch=True)
print(found)'''),
    ("code", "lab_view(found)"),
    ("markdown", "Every measurement, for your own analysis (`--out results.parquet` on the command line):"),
    ("code", "found.table().head()"),
]


def build() -> nbformat.NotebookNode:
    cells = []
    for kind, source in CELLS:
        cells.append(new_code_cell(source) if kind == "code" else new_markdown_cell(source))
    cells[0].metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


if __name__ == "__main__":
    out = Path(__file__).with_name("regression_lab.ipynb")
    nbformat.write(build(), out)
    print(out)
