"""The audit view and the plan in the tree panel, headless: state, what is drawn, and the exported JSON."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import polars as pl
import pytest
from bokeh.document import Document

from tests.widgets.test_helpers import make_diagnosis
from workbench import Window, open_case
from workbench.model.audit import Bundle, DependencyAudit
from workbench.model.mitigate import Simulation
from workbench.rca.mitigations import Mitigation
from workbench_widgets import AuditView
from workbench_widgets._results import Results
from workbench_widgets.state import Investigation
from workbench_widgets.tree_panel import TreePanel


def _wide_audit(d: int = 1_000) -> DependencyAudit:
    """A hand-made audit of a model with ``d`` features (every tenth a removal candidate)."""
    share = np.linspace(2.0, 0.01, d)
    share /= share.sum()
    names = [f"f_{i:04d}" for i in range(d)]
    table = pl.DataFrame({"feature": names, "share": share, "mean_abs_shap": share, "permutation_rise": share / 10,
                          "permutation_se": np.full(d, 1e-3), "coverage": np.ones(d), "bundle": [None] * d,
                          "signal": [False] * d, "candidate": [i % 10 == 9 for i in range(d)],
                          "reason": ["epsilon: by hand" if i % 10 == 9 else "" for i in range(d)]},
                         schema_overrides={"bundle": pl.Int64})
    lineage = pl.DataFrame({"node": ["table:t"], "kind": ["table"], "features": [names[:10]], "share": [float(share[:10].sum())],
                            "candidates": [[names[9]]]})
    return DependencyAudit(case="wide", snapshot="v1", window=Window("2026-11-18T00:00Z", "2026-11-19T00:00Z"),
                           method="model:shap", rows=100, labelled_rows=1000, table=table,
                           bundles=(Bundle(("f_0000", "f_0001"), "f_0000", 0.97, False, "by hand"),), lineage=lineage,
                           rule="by hand")


def test_a_thousand_features_are_searched_and_paged():
    view = AuditView(_wide_audit(), page_size=50)
    view.__panel__().get_root(Document())
    assert view.pages == 20 and len(view.table.value) == 50  # one page reaches the browser, not 1,000 rows
    assert view.table.value["feature"].iloc[0] == "f_0000" and "page 1 of 20" in view.page_label.object
    view.next_btn.clicks += 1
    assert view.page == 2 and view.table.value["feature"].iloc[0] == "f_0050"
    view.search_input.value_input = "f_09"  # typing searches, and a new filter starts on its first page
    assert view.page == 1 and view.filtered().height == 100 and set(view.table.value["feature"].str[:4]) == {"f_09"}
    view.only_box.value = True
    assert view.filtered().height == 10 and view.filtered()["candidate"].all()
    view.page = 5  # beyond the last page: clamped
    assert view.page == 1 and view.prev_btn.disabled and view.next_btn.disabled
    assert "pl.col('candidate')" in view.code() and "f_09" in view.code()
    assert not view.error.visible


def test_unknown_keyword_gets_a_spelling_hint():
    with pytest.raises(TypeError, match="Hint: did you mean 'page_size'"):
        AuditView(_wide_audit(10), pagesize=5)


def test_the_tree_panel_shows_the_plan_and_exports_it_as_json(small_case_template):
    case = open_case(small_case_template)
    d = make_diagnosis(case)
    sim = Simulation("backfill", "table:t", "normalized_entropy", 0.80, 0.90, 0.82, 0.8, 4_000, "by hand")
    plan = (Mitigation("backfill", "table:t", "Backfill table:t's <outputs>.", predicted=sim),
            Mitigation("investigate", "table:t", "Ask the owners.", reason="cannot be simulated", proposes="backfill"))
    d = dataclasses.replace(d, root_causes=(dataclasses.replace(d.root_causes[0], mitigations=plan), *d.root_causes[1:]))
    results = Results(case, diagnosis=d)
    panel = TreePanel(Investigation(), results)
    panel.__panel__()
    html = panel.plan_pane.object
    assert "backfill" in html and "80%</b> of the regression" in html and "(predicted)" in html
    assert "&lt;outputs&gt;" in html and "<outputs>" not in html  # strings from data are escaped
    exported = json.loads(panel.export.callback().getvalue())
    assert panel.export.filename.endswith("-plan.json")
    assert exported["plan"][0]["mitigations"][0]["predicted"]["recovery"] == 0.8
    assert exported["plan"][0]["mitigations"][1] == plan[1].to_dict()
