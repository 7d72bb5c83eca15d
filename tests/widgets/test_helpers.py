"""Hand-made diagnoses for the widget tests: a known tree, known evidence, known root causes.

The widgets draw a :class:`~workbench.rca.Diagnosis`; building one by hand pins
exactly what they must show, independently of the checks' own numbers.
"""

from __future__ import annotations

from datetime import timedelta

from workbench.case.loader import Case
from workbench.rca import Candidate, Diagnosis, Evidence, Node, RootCause, Tree, plotspec
from workbench.windows import Window, iso


def _check(name: str):
    def run(ctx):
        return Evidence(name, "info", 0.5, f"{name} re-ran on {ctx.baseline} vs {ctx.incident}")

    return run


NODES = {
    "prediction_quality": ("Did prediction quality regress?", ("label_side", "model_side", "feature_side", "slice")),
    "label_side": ("Did the labels move?", ()),
    "model_side": ("Was a snapshot published near the onset?", ()),
    "feature_side": ("Did a feature break?", ("lineage",)),
    "lineage": ("Which upstream node feeds the broken features?", ()),
    "slice": ("Is the regression confined to one segment?", ()),
}


def make_diagnosis(case: Case, *, with_cause: bool = True) -> Diagnosis:
    """A diagnosis of ``case`` blaming ``table:t`` through f_a and f_b (the small case's lineage)."""
    start = case.start
    onset = start + timedelta(hours=30)
    baseline, incident = Window(start, onset - timedelta(hours=6)), Window(onset, case.end)
    tree = Tree({n: Node(n, q, _check(n), children=c, read=f"how to read {n}") for n, (q, c) in NODES.items()})
    hours = [iso(start + timedelta(hours=h)) for h in range(48)]
    ne = [0.8 + (0.1 if h >= 30 else 0.0) + 0.01 * (h % 3) for h in range(48)]
    up = Candidate("upstream", "table:t", 0.8, "table:t feeds f_a and f_b, which broke together",
                   explains=(("feature", "f_a"), ("feature", "f_b")))
    steps = [
        (("prediction_quality",), Evidence("prediction_quality", "fail", 0.9, "NE rose from 0.80 to 0.90 at hour 30",
                                           detail="hourly NE vs its normal band",
                                           data={"plot": plotspec.timeseries(hours, {"NE": ne}, title="NE", y="NE", onset=iso(onset),
                                                                             shade=[[iso(baseline.start), iso(baseline.end), "baseline"]],
                                                                             estimated_from=hours[-4])})),
        (("prediction_quality", "label_side"), Evidence("label_side", "pass", 0.05, "labels steady")),
        (("prediction_quality", "model_side"), Evidence.skipped("model_side", "no snapshots/index.csv")),
        (("prediction_quality", "feature_side"), Evidence(
            "feature_side", "fail", 0.85, "f_a and f_b lost coverage at the onset",
            data={"plot": plotspec.bars(["f_a", "f_b", "f_c"], [0.9, 0.8, 0.05], title="severity", highlight=["f_a", "f_b"]),
                  "plots": [{"kind": "hist", "edges": [0, 1, 2, 3], "series": {"baseline": [5, 3, 1], "incident": [1, 3, 5]},
                             "title": "f_a"}]},
            candidates=(Candidate("feature", "f_a", 0.7, "f_a lost 60% coverage"),
                        Candidate("feature", "f_b", 0.6, "f_b lost 55% coverage")))),
        (("prediction_quality", "feature_side", "lineage"), Evidence(
            "lineage", "fail", 0.8, "table:t feeds both broken features", candidates=(up,),
            data={"plot": plotspec.table(["node", "covers"], [["table:t", 2], ["pipeline:p", 2]], title="covering nodes")})),
        (("prediction_quality", "slice"), Evidence("slice", "warn", 0.3, "country=BR slightly worse",
                                                   data={"plot": {"kind": "mystery"}})),
    ]
    causes = ()
    if with_cause:
        causes = (RootCause("upstream", "table:t", 0.81, 0.8, up.summary, (("lineage", up.summary), ("feature_side", "f_a, f_b")),
                            ("prediction_quality", "feature_side", "lineage")),
                  RootCause("feature", "f_a", 0.1, 0.2, "f_a lost 60% coverage", (("feature_side", "coverage"),),
                            ("prediction_quality", "feature_side")))
    anomaly = {"detected": True, "metric": "normalized_entropy", "onset": iso(onset), "baseline": 0.8, "current": 0.9}
    return Diagnosis(case=case, tree=tree, anomaly=anomaly, baseline=baseline, incident=incident, steps=tuple(steps),
                     root_causes=causes, skipped=({"check": "model_side", "reason": "no snapshots/index.csv"},), seconds=1.0)
