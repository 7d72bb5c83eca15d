"""The root-cause engine: known answers on every sample case, the JSON contract, the extension point, escaping."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import polars as pl
import pytest

from tests.conftest import SAMPLES, sample_case, sample_cases, tree_digest
from workbench.rca import Candidate, Evidence, Node, default_tree, diagnose, register
from workbench.rca import tree as tree_module
from workbench.report.html import render_report

# The contract (v2) of `workbench diagnose CASE --json`, as a JSON schema.
PREDICTED = {"type": "object", "required": ["metric", "value", "recovery"],
             "properties": {"metric": {"type": "string"}, "value": {"type": "number"}, "recovery": {"type": "number"}}}
MITIGATION = {"type": "object", "required": ["action", "target", "how"],
              "properties": {"action": {"enum": ["rollback", "fallback", "backfill", "recalibrate", "exclude_training",
                                                 "investigate"]},
                             "target": {"type": "string"}, "how": {"type": "string"}, "factor": {"type": "number"},
                             "from": {"type": "string"}, "to": {"type": "string"},
                             "predicted": {"oneOf": [PREDICTED, {"type": "null"}]}}}
CONTRACT = {
    "type": "object",
    "required": ["case", "anomaly", "root_causes", "skipped", "errors"],
    "additionalProperties": False,
    "properties": {
        "case": {"type": "string"},
        "anomaly": {
            "type": "object", "required": ["detected", "metric", "onset", "baseline", "current"],
            "properties": {"detected": {"type": "boolean"}, "metric": {"type": "string"},
                           "onset": {"type": ["string", "null"], "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$"},
                           "end": {"type": ["string", "null"], "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:00Z$"},
                           "baseline": {"type": ["number", "null"]}, "current": {"type": ["number", "null"]},
                           "grain": {"type": ["string", "null"], "enum": ["15m", "1h", "6h", "1d", "1w", None]},
                           "segment": {"type": ["string", "null"]},
                           "metrics": {"type": "array", "items": {
                               "type": "object", "required": ["metric", "baseline", "current", "regressed"],
                               "properties": {"metric": {"type": "string"}, "baseline": {"type": ["number", "null"]},
                                              "current": {"type": ["number", "null"]}, "regressed": {"type": "boolean"}}}}}},
        "root_causes": {"type": "array", "items": {
            "type": "object", "required": ["kind", "target", "confidence", "summary", "evidence", "path", "mitigations"],
            "properties": {
                "kind": {"enum": ["snapshot", "feature", "upstream", "label", "calibration", "slice"]},
                "target": {"type": "string"}, "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "summary": {"type": "string"}, "layer": {"type": "string"}, "slice": {"type": "string"},
                "change": {"enum": ["coverage", "scale", "stale", "decorrelated", "skew", "shift"]},
                "evidence": {"type": "array", "items": {"type": "object", "required": ["check", "detail"]}},
                "path": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "mitigations": {"type": "array", "items": MITIGATION}}}},
        "skipped": {"type": "array", "items": {"type": "object", "required": ["check", "reason"]}},
        "errors": {"type": "array", "items": {"type": "object", "required": ["check", "error"],
                                              "properties": {"check": {"type": "string"}, "error": {"type": "string"}}}},
    },
}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def diagnoses() -> dict[str, object]:
    return {p.name: diagnose(p, strict=True) for p in sample_cases()}


def test_there_are_sample_cases_to_check():
    assert len(sample_cases()) >= 11


@pytest.mark.parametrize("name", [p.name for p in sample_cases()])
def test_true_cause_ranks_first(name, diagnoses):
    truth = json.loads((SAMPLES / name / "truth.json").read_text())
    d = diagnoses[name]
    jsonschema.validate(d.to_dict(), CONTRACT)
    if truth["kind"] == "none":
        assert not d.anomaly["detected"] and d.root_causes == ()
        return
    assert d.anomaly["detected"], d
    top = d.top
    assert (top.kind, top.target) == (truth["kind"], truth["target"]), str(d)
    if truth.get("slice"):
        assert top.slice == truth["slice"], str(d)
    if truth.get("layer"):
        assert top.layer == truth["layer"], str(d)


@pytest.mark.parametrize("name", [p.name for p in sample_cases() if p.name != "control"])
def test_top_cause_first_mitigation_recovers_half_the_regression(name, diagnoses):
    """Acceptance (issue 16): simulated on the incident window, the first action of the top cause recovers at least half
    of the regression; a snapshot cause rolls back to a snapshot published before the bad one that passes validation."""
    from workbench.model.validation import validate_snapshot

    d = diagnoses[name]
    first = d.top.mitigations[0]
    out = d.to_dict()["root_causes"][0]["mitigations"][0]
    assert first.predicted is not None and first.recovery is not None and first.recovery >= 0.5, str(d)
    assert out["predicted"]["metric"] == d.anomaly["metric"] and out["predicted"]["recovery"] >= 0.5
    assert "(predicted" in str(first)  # the text labels it a prediction
    assert "plan (simulated on the incident window" in str(d) and "<h2>Plan</h2>" in render_report(d)
    if d.top.kind == "snapshot":
        bad, good = d.case.snapshot(d.top.target), d.case.snapshot(first.target)
        assert first.action == "rollback" and good.published_at < bad.published_at
        assert good.stable or validate_snapshot(d.case, good.snapshot_id).passed
    if d.top.kind == "label":  # the served predictions are fine: never recalibrate them to wrong labels
        assert first.action == "exclude_training" and all(m.action != "recalibrate" for m in d.top.mitigations)


def test_json_contract_stdout_only_json_and_exit_codes(tmp_path):
    case = sample_case("upstream_break")
    before = tree_digest(case)
    proc = _cli("diagnose", str(case), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # stdout holds one JSON object and nothing else
    jsonschema.validate(result, CONTRACT)
    assert proc.stderr.strip()  # progress went to stderr
    assert tree_digest(case) == before
    proc = _cli("diagnose", str(tmp_path), "--json")  # not a case
    assert proc.returncode == 2 and proc.stdout == "" and "predictions.parquet" in proc.stderr


def test_control_exits_zero_with_no_root_cause():
    proc = _cli("diagnose", str(sample_case("control")), "--json", "-q")
    assert proc.returncode == 0
    out = json.loads(proc.stdout)
    assert out["anomaly"]["detected"] is False and out["root_causes"] == []


def test_skipped_checks_name_the_missing_file(small_case):
    for name in ("lineage.json", "events.csv", "training.parquet", "model.py"):
        (small_case / name).unlink()
    d = diagnose(small_case)
    reasons = {s["check"]: s["reason"] for s in d.skipped}
    assert reasons["lineage"] == "no lineage.json"
    assert reasons["training_skew"] == "no training.parquet"
    assert reasons["snapshot_validation"] == "no model.py (or [model] factory)"


def test_a_registered_node_shows_up_everywhere(monkeypatch):
    monkeypatch.setattr(tree_module, "_REGISTERED", [])

    def holiday(ctx):
        return Evidence("holiday", "warn", 0.9, "A holiday changed the traffic mix.",
                        candidates=(Candidate("slice", "country=US", 0.95, "holiday traffic in the US"),))

    register(Node("holiday", "Did a holiday change the traffic mix?", holiday), parent="slice")
    tree = default_tree()
    assert "holiday" in tree.nodes["slice"].children
    d = diagnose(sample_case("slice_shift"), tree=tree)
    assert d.evidence("holiday").summary == "A holiday changed the traffic mix."
    assert "holiday" in str(d) and "A holiday changed the traffic mix." in render_report(d)
    assert any(c.target == "country=US" and c.path[-1] == "holiday" for c in d.root_causes)


def test_the_quality_checks_reading_names_every_watched_metric():
    """The report and the panel show this under the quality plot whatever the headline metric: it said "normalized
    entropy rose" under a calibration headline."""
    from workbench.data.onset import WATCHED

    read = default_tree().nodes["prediction_quality"].read.lower()
    assert all(metric.replace("_", " ") in read for metric in WATCHED) and "rose" not in read


def test_plugin_module_through_the_cli(tmp_path):
    (tmp_path / "my_checks.py").write_text(
        "from workbench.rca import Evidence, Node, register\n"
        "register(Node('team_check', 'Is the team check happy?', lambda ctx: Evidence('team_check', 'info', 0.0, 'team check ran')),"
        " parent='prediction_quality')\n")
    env_path = f"{tmp_path}"
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "diagnose", str(sample_case("control")), "--plugin", "my_checks"],
                          capture_output=True, text=True, env={**__import__("os").environ, "PYTHONPATH": env_path})
    assert proc.returncode == 0, proc.stderr
    assert "team_check" in proc.stdout


def test_report_escapes_strings_from_data(small_case, tmp_path):
    evil = "<script>alert(1)</script>"
    df = pl.read_parquet(small_case / "predictions.parquet").rename({"f_a": evil})
    df.write_parquet(small_case / "predictions.parquet")
    (small_case / "training.parquet").unlink()
    (small_case / "lineage.json").unlink()
    (small_case / "model.py").unlink()
    (small_case / "workbench.toml").write_text(f'[case]\nname = "{evil}"\n[columns]\nfeatures = ["{evil}", "f_b", "f_c"]\n')
    html = render_report(diagnose(small_case))
    assert evil not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_report_cli_writes_self_contained_html(tmp_path):
    out = tmp_path / "report.html"
    proc = _cli("report", str(sample_case("upstream_break")), "-o", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert "<script" not in html and "http" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "<svg" in html and "table:" in html and out.stat().st_size < 3_000_000


def test_report_and_audit_refuse_to_write_over_a_file_of_the_case(tmp_path):
    """`-o CASE/predictions.parquet` replaced the serving log with a web page; refused now, the file unchanged. A new
    page inside the case is fine."""
    import shutil

    case = tmp_path / "case"
    shutil.copytree(sample_case("control"), case)
    log = (case / "predictions.parquet").read_bytes()
    for args in (("report", str(case), "-o", str(case / "predictions.parquet"), "-q"),
                 ("audit", str(case), "--html", str(case / "workbench.toml"), "-q")):
        proc = _cli(*args)
        assert proc.returncode == 2 and "is a file of the case" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert (case / "predictions.parquet").read_bytes() == log and "[columns]" in (case / "workbench.toml").read_text()
    # a review's case: the case's log a link to a file outside it (resolved, it looked outside the case)
    outside = tmp_path / "data" / "serving.parquet"
    outside.parent.mkdir()
    (case / "predictions.parquet").rename(outside)
    (case / "predictions.parquet").symlink_to(outside)
    proc = _cli("report", str(case), "-o", str(case / "predictions.parquet"), "-q")
    assert proc.returncode == 2 and "is a file of the case" in proc.stderr and outside.read_bytes() == log, proc.stderr




def test_a_coverage_change_says_which_way_it_went(tmp_path):
    """A feed that filled again is a coverage change too (``change: coverage``), but "lost coverage" would send the
    reader to the wrong fix: the words follow the sign of the coverage change. End to end on a loss (every ``f_a``
    value null from hour 48); a gain regresses nothing on a synthetic log, so its words are checked on the helper
    every feature-cause summary goes through."""
    from tests.data.analysis_data import write_case
    from workbench import open_case
    from workbench.rca.checks._common import change_words

    found = diagnose(open_case(write_case(tmp_path / "case", onset=48, break_="coverage_all")), strict=True)
    cand = next(c for c in found.evidence("feature_side").candidates if c.target == "f_a")
    assert (cand.change, cand.summary.split(" at ")[0]) == ("coverage", "f_a lost coverage")
    assert change_words("coverage", -0.95) == "lost coverage"
    assert change_words("coverage", +0.9) == "gained coverage"
    assert change_words("coverage") == "lost coverage"  # direction unknown: the common case
    assert change_words(None, 0.5, "broke") == "broke"
