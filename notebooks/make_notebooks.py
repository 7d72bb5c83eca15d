"""Write the template notebooks (no outputs): ``python notebooks/make_notebooks.py``.

Every notebook has a ``parameters`` cell (papermill) with ``case``, the path of the
case directory, so a team runs it unchanged on its own case::

    papermill notebooks/triage.ipynb out.ipynb -p case path/to/case

``metadata.workbench.workflows`` lists the decision-tree nodes a notebook teaches;
``tests/test_notebooks.py`` checks every workflow of the tree has its notebook.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parent
SETUP = """from IPython.display import Markdown, display

from workbench import diagnose, open_case

case = open_case(case)   # validates the case; errors name the file, the column and the fix
print(case)"""


def md(text: str) -> nbf.NotebookNode:
    return nbf.v4.new_markdown_cell(text.strip())


def code(text: str) -> nbf.NotebookNode:
    return nbf.v4.new_code_cell(text.strip())


def params(default_case: str) -> nbf.NotebookNode:
    cell = code(f'case = "../sample_data/cases/{default_case}"  # the case directory to investigate')
    cell.metadata["tags"] = ["parameters"]
    return cell


WINDOWS = """d = diagnose(case)
baseline, incident = d.baseline, d.incident
print(f"baseline {baseline}\\nincident {incident}")"""

# What the investigation found, in words, on every kind of case: an incident, a healthy log, a log too sparse
# to test, a case with only its serving log (the skipped checks name the files that would enable them).
VERDICT = """a = d.anomaly
if a["grain"] is None:
    print(d.evidence(d.tree.root).summary)
elif not a["detected"]:
    print(f"Nothing regressed: prediction quality stayed within its normal variation (per {a['grain']}).")
elif d.top is None:
    print(f"{a['metric']} regressed from {a['onset']}, but no check found its cause.")
else:
    print(f"{a['metric']} regressed from {a['onset']}; most likely cause: {d.top.kind} {d.top.target} "
          f"(confidence {d.top.confidence:.2f}). {d.top.summary}")
for s in d.skipped:
    if s["check"] != d.tree.root:
        print(f"Not checked: {s['check']} ({s['reason']})")"""

NOTEBOOKS: dict[str, dict] = {
    "quickstart": {
        "default": "upstream_break",
        "workflows": [],
        "cells": [
            md("""
# Quickstart: why did the predictions go bad?

Three cells. The first names the case (a directory in the case format: the serving log
plus whatever else you have — snapshots, `model.py`, `lineage.json`, `events.csv`). The
second opens the guided investigation: the decision tree with a verdict on every step,
and tabs for the quality timeline, slices, features, snapshots and lineage. The third
prints the same answer as `workbench diagnose` does in a terminal."""),
            params("upstream_break"),
            code("""from workbench import diagnose
from workbench_widgets import investigate

d = diagnose(case)   # the whole decision tree, once; the widget draws this result
investigate(case, diagnosis=d)"""),
            code("""print(d)"""),
            md("""
**Reading it.** The headline names the most likely root cause with a confidence
between 0 and 1. Open a node of the tree to see its evidence and plot; the highlighted
path is the route that led to the cause. The other notebooks in this folder walk
through each part of the tree in depth."""),
            md("""
## Your own log, where it lives

A serving log rarely sits next to a `model.py` as one parquet file. Point the case at it
instead: `[source.predictions]` in the case's `workbench.toml` names a parquet path, an
`s3://`/`gs://`/`az://` dataset, a Delta or Iceberg table, or a PostgreSQL, SQLite or
DuckDB table or query (`pip install 'ml-workbench[sources]'`). Time windows are read at
the source: a `WHERE` on the timestamp, only the columns a check needs. The password
never goes in the file: PostgreSQL reads `PGPASSWORD` or `~/.pgpass`, S3 the `AWS_*`
variables. This cell only writes the file, so it runs without a database."""),
            code("""import tempfile
from pathlib import Path

my_case = Path(tempfile.mkdtemp()) / "ctr_case"   # a case directory: workbench.toml plus any snapshots/, model.py, ...
my_case.mkdir()
(my_case / "workbench.toml").write_text(\'\'\'
[case]
name = "ads ctr, read from the serving database"

[columns]
timestamp  = "ts"
prediction = "p_click"

[source.predictions]
uri   = "postgresql://reader@db.internal:5432/ml"   # no password here: PGPASSWORD or ~/.pgpass
table = "ctr_serving_log"                           # or: query = "SELECT * FROM ctr_serving_log WHERE model = 'ctr'"
\'\'\')
print((my_case / "workbench.toml").read_text())
# Where the database is reachable: d = diagnose(open_case(my_case))"""),
        ],
    },
    "triage": {
        "default": "feature_stale",
        "workflows": ["prediction_quality"],
        "cells": [
            md("""
# Triage with the decision tree

An expert triages a prediction-quality regression in a fixed order: *did quality
regress, when and where* → *did the labels change* → *was a snapshot published* →
*did features break* → *which upstream table* → *calibration* → *one segment*. This
notebook runs that tree and shows how to read each step."""),
            params("feature_stale"),
            code(SETUP),
            md("""
## 1. Run the tree

`diagnose` walks every node, caches every analysis result (the CLI, the report and the
widgets draw the same object), and ranks the candidate causes. The text is exactly what
`workbench diagnose CASE` prints."""),
            code("""d = diagnose(case)
print(d)"""),
            md("""
## 2. Read the path

Each node gives a verdict: **fail** found a problem, **warn** is suspicious but not
conclusive, **pass** ruled a cause out, **skip** could not run (the reason names the
file that would enable it). The arrow marks the recommended path to the top cause."""),
            code("""for path, ev in d.steps:
    print(f"{'  ' * (len(path) - 1)}{path[-1]:<20} {ev.verdict:<5} {ev.summary}")"""),
            md("""
## 3. The ranked causes and what to do

Confidence combines the strength of the evidence with its share among the competing
explanations (see `workbench/rca/ranking.py`): one strong, unrivalled cause scores
high; two equally strong ones each at most 0.5. Events from `events.csv` near the onset
raise a cause's confidence but never create one."""),
            code(VERDICT),
            code("""for c in d.root_causes:
    print(f"{c.kind:<12} {c.target:<30} confidence {c.confidence:.2f}  {c.summary}")
if d.root_causes:
    display(Markdown("**Next steps**\\n\\n" + "\\n".join(f"- {s}" for s in d.next_steps())))"""),
            md("""
## 4. Share it

`workbench report CASE -o report.html` writes the same investigation as one
self-contained HTML file (no JavaScript, opens offline), for people who do not use
Jupyter. From Python:"""),
            code("""from workbench import write_report

print(write_report(d, "triage-report.html"))"""),
            code("""from workbench_widgets import investigate

investigate(case, diagnosis=d)"""),
        ],
    },
    "features_and_lineage": {
        "default": "upstream_break",
        "workflows": ["feature_side", "training_skew", "feature_isolation", "lineage"],
        "cells": [
            md("""
# Features and lineage: which inputs broke, and where upstream?

Most production regressions are data breaks: a feature loses coverage, changes unit,
freezes, or an upstream table breaks several features at once. This notebook ranks the
features, isolates how much of the regression each explains, and walks the lineage to
the most specific upstream node."""),
            params("upstream_break"),
            code(SETUP),
            code(WINDOWS),
            code(VERDICT),
            md("""
## 1. Rank the features

Severity is an effect size, not a p-value: the Jensen-Shannon distance (with a null
bin, so a coverage drop shows) *beyond* how much the same feature moved over the same
time lag before the baseline. Organic drift moves a feature as much before as after, so
it ranks low. `kind` says where the moved mass went: coverage, scale, stale or
distribution."""),
            code("""from workbench import feature_drift

fd = feature_drift(case, baseline, incident)
fd.table.select("feature", "kind", "severity", "coverage_baseline", "coverage_incident", "scale_ratio",
                "top_share_baseline", "top_share_incident").head(8)"""),
            md("""
## 2. Training-serving skew

A feature that matched the training data before the onset and not after broke at
serving time; one that never matched was always skewed (a different, older problem)."""),
            code("""from workbench import training_skew

if case.training is not None:
    display(training_skew(case, incident).table.select("feature", "kind", "severity").head(5))"""),
            md("""
## 3. Isolate: how much of the regression does each feature explain?

With `model.py` and snapshots, each feature's incident values are swapped for baseline
values and the rows re-scored (how much NE comes back), next to SHAP attributions
compared across the windows. Without a model, a gradient-boosted surrogate of the
logged prediction stands in, and says so."""),
            code("""from workbench import isolate_features

if d.anomaly["detected"]:
    iso = isolate_features(case, baseline, incident)
    print(iso.method)
    display(iso.table.select("feature", "rank", "score", "ne_recovered", "loss_share", "prediction_shift_share").head(6))
else:
    print("No regression was detected, so there is nothing to attribute to the features.")"""),
            md("""
## 4. Walk the lineage

The broken features are fed by many tables and pipelines; the cause is the node whose
break best explains which of its features broke and which stayed healthy (a table that
spared half of what it feeds is a weak suspect), ties to the most specific node."""),
            code("""lineage = d.evidence("lineage")
print(lineage.summary)
print(lineage.detail)"""),
            code("""for c in d.root_causes[:3]:
    print(f"{c.kind:<10} {c.target:<28} {c.confidence:.2f}  {c.summary}")"""),
            md("""
**What to do next.** For an upstream cause, open the incident with the owners of that
table or pipeline, backfill the broken hours, and add a coverage monitor on the
features below it. For a single feature, check the job that produces it."""),
            code("""from workbench_widgets import investigate

investigate(case, diagnosis=d)"""),
        ],
    },
    "snapshots": {
        "default": "snapshot_corrupt",
        "workflows": ["model_side", "snapshot_validation", "activation_trace", "served_beside"],
        "cells": [
            md("""
# Snapshot diagnosis: diff, validation, activation tracing

Was the regression caused by a model snapshot published near the onset? Three tools,
each judged against the case's own benign refreshes so routine updates never alarm."""),
            params("snapshot_corrupt"),
            code(SETUP),
            md("""
## 1. Diff every snapshot against its predecessor

Per parameter: relative L2 change, max change, NaN/Inf, norm ratio, sign flips, dead
units. The robust z compares the change with the changes between consecutive benign
snapshots; the first snapshot above the gate is the first bad one."""),
            code("""from workbench import snapshot_timeline

tl = snapshot_timeline(case) if case.snapshots else None
if tl is None:
    print("This case has no snapshots/index.csv: there is no snapshot to diff, validate or trace.")
else:
    print(tl)
    display(tl.table.select("snapshot_id", "published_at", "rel_l2", "z", "gate", "alarm", "top_parameter"))"""),
            md("""
## 2. Validate the suspect on holdout data

The guardrail before serving: score the snapshot on labeled rows from before it was
published and compare NE, AUC and calibration with the stable snapshot. Tolerances
come from bootstrap noise and the spread of earlier refreshes, not magic numbers.
`workbench validate CASE --snapshot ID` exits 1 on a failure (use it in a deploy
script)."""),
            code("""from workbench import validate_snapshot

suspect = (tl.first_bad or case.snapshots[-1].snapshot_id) if tl is not None else None
if suspect is None or case.model is None:
    print("Validation needs snapshots/index.csv and model.py; this case lacks", "snapshots." if suspect is None else "model.py.")
else:
    v = validate_snapshot(case, suspect)
    print(f"{suspect}:", "PASS" if v.passed else "FAIL", *v.reasons, sep="\\n - ")
    display(v.metrics)"""),
            md("""
## 3. Trace activations layer by layer

Both snapshots run on the same rows; the first layer whose activations diverge beyond
benign variation is where the damage starts (it propagates downstream)."""),
            code("""from workbench import compare_activations

ids = [s.snapshot_id for s in case.snapshots]
if suspect is None or case.model is None or ids.index(suspect) == 0:
    print("Tracing needs model.py and a snapshot published before the suspect; this case has neither pair.")
else:
    previous = ids[ids.index(suspect) - 1]
    act = compare_activations(case, previous, suspect)
    print(f"{previous} -> {suspect}: first divergent layer", act.first_divergent_layer or "none",
          f"({act.first_divergent_parameter})" if act.first_divergent_parameter else "")
    display(act.table.select("layer", "parameter", "rel_diff", "z", "gate", "diverged"))"""),
            md("""
## 4. A canary or an A/B arm: the rows served beside it

When the serving log names each row's snapshot and two served in the same hours, each
snapshot's rows are compared with the rows the others served in those hours (reweighted
hour by hour), against the same comparison in the baseline. No model file is needed."""),
            code("""from workbench import detect_onset, served_side_by_side

onset = detect_onset(case)
print(served_side_by_side(case, onset.baseline, onset.incident))"""),
            code("""d = diagnose(case)
""" + VERDICT + """
if d.top is not None and d.top.layer:
    print("layer:", d.top.layer)"""),
            md("""
**What to do next.** Roll serving back to the stable snapshot, then gate every new
snapshot with `workbench validate` before it is published."""),
        ],
    },
    "slices": {
        "default": "slice_shift",
        "workflows": ["slice"],
        "cells": [
            md("""
# Slices: is the regression confined to one segment?

Slice finders usually look for where the error is *high*. Here we look for where it
*changed*: a lattice search over slice values and pairs, scored by the regression each
slice explains, with a Bonferroni significance control so tiny slices do not win on
noise."""),
            params("slice_shift"),
            code(SETUP),
            code(WINDOWS),
            md("""
## 1. Per-slice deltas

Baseline vs incident NE for every value of every slice column (and pairs)."""),
            code("""from workbench import slice_deltas

if case.slices:
    display(slice_deltas(case, baseline, incident).table.head(10))
else:
    print("This case has no slice columns: map them in workbench.toml ([columns] slices).")"""),
            md("""
## 2. Where does the regression concentrate?

`explained_share` is the slice's share of the total regression; `confined` says whether
the rest of the traffic stayed put."""),
            code("""from workbench import find_slices

if case.slices:
    search = find_slices(case, baseline, incident)
    print(search)
    display(search.table.head(5))"""),
            code(VERDICT),
            md("""
**What to do next.** A segment that regressed alone, with healthy features, labels and
snapshot, points at something outside the model: a product change, an outage, a
partner or logging issue in that segment."""),
        ],
    },
    "labels_and_calibration": {
        "default": "label_drift",
        "workflows": ["label_side", "calibration"],
        "cells": [
            md("""
# Labels and calibration

Two regressions that look alike on NE and need opposite fixes: the **labels** changed
(a logging or join bug: labels move, predictions do not) or the **calibration** changed
(predictions move in scale, ranking quality holds, inputs and snapshot do not)."""),
            params("label_drift"),
            code(SETUP),
            code(WINDOWS),
            md("""
## 1. Label delay

The latest hours' labels are usually still joining. Their metrics are *estimated*,
never mixed with measured ones."""),
            code("""from workbench import label_delay

print(label_delay(case))"""),
            md("""
## 2. Did the labels move on their own?"""),
            code("""from workbench import label_shift

print(label_shift(case, baseline, incident))"""),
            md("""
## 3. Calibration: ranking held, scale moved?"""),
            code("""from workbench import calibration_shift

cs = calibration_shift(case, baseline, incident)
print(cs)
cs.reliability_incident.table"""),
            md("""
## 4. Label-free estimate for the delayed hours

From the predictions alone (confidence-based, as CBPE does): what NE to expect if the
model is still calibrated."""),
            code("""from workbench import estimate_unlabeled

print(estimate_unlabeled(case))"""),
            code(VERDICT),
            md("""
**What to do next.** Label cause: fix the label join/logging and do not retrain on the
broken labels. Calibration cause: check the serving-side calibration or post-processing
config pushed near the onset."""),
        ],
    },
    "dependencies": {
        "default": "upstream_break",
        "workflows": ["feature_isolation", "lineage"],
        "cells": [
            md("""
# What does the model depend on?

A data-dependency audit of the model in a case: each feature's share of the model's
attribution, the features that contribute almost nothing (removal candidates), bundles
of near-copies (one carries the signal), and the upstream tables and pipelines the
model's signal flows through. Every feature you keep is a feature that can break."""),
            params("upstream_break"),
            code(SETUP),
            md("""
## 1. The audit

Attribution: mean |SHAP| share on a healthy stretch of traffic (by default the week before
the last day). Removal rules are printed with the result."""),
            code("""from workbench import WorkbenchError, audit_dependencies

try:
    audit = audit_dependencies(case)
    print(audit)
except WorkbenchError as exc:  # e.g. too few rows to audit on: the message says what is missing
    audit = None
    print(exc)"""),
            md("""
## 2. Removal candidates and upstream dependencies, as tables"""),
            code("""import polars as pl

if audit is not None:
    display(audit.table.filter(pl.col("candidate")).select("feature", "share", "permutation_rise", "reason"))
    display(audit.lineage)"""),
            md("""
## 3. Browse it

Search and page through every feature (it stays quick with a thousand of them)."""),
            code("""from workbench_widgets import AuditView

AuditView(audit) if audit is not None else None"""),
            md("""
## 4. And the incident, if there is one

The audit says what the model leans on; the diagnosis says what broke. A broken feature
with a large share, or a table with a large share of the attribution, is where a guard
(`workbench guard CASE`) pays off first."""),
            code("d = diagnose(case)"),
            code(VERDICT),
            md("""
**What to do next.** Drop removal candidates at the next retrain (one change at a time,
validated with `workbench validate`); keep one member of each bundle; put a monitor
(`[guard]` in workbench.toml) on every table whose share of the attribution is large."""),
        ],
    },
}


def build(name: str, spec: dict) -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook(cells=spec["cells"])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["workbench"] = {"workflows": spec["workflows"], "default_case": spec["default"]}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name}-{i}"  # stable ids: regenerating gives the same bytes
    return nb


def main(out: Path = HERE) -> None:
    for name, spec in NOTEBOOKS.items():
        path = out / f"{name}.ipynb"
        nbf.write(build(name, spec), path)
        print("wrote", path)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
