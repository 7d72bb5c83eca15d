"""The project's shape: one-way imports, a light `import workbench`, every subpackage installed."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib

from tests.conftest import ROOT

UI = {"ipywidgets", "panel", "holoviews", "bokeh", "param", "IPython", "matplotlib", "hvplot", "workbench_widgets"}


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


def test_analysis_layer_never_imports_ui():
    offenders = {f"{p.relative_to(ROOT)}: {m}" for p in (ROOT / "workbench").rglob("*.py") for m in _imports(p) if m in UI}
    assert not offenders, sorted(offenders)


def test_import_workbench_is_light_and_needs_no_ui():
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, *a):\n"
            f"        if name.split('.')[0] in {sorted(UI)!r}: raise ImportError('blocked ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import workbench, workbench.case.loader, workbench.cli\n"
            "import workbench.lab\n"
            "print(sorted(m for m in ('torch', 'polars', 'scipy') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['polars']"  # workbench.case.loader needs polars; torch and scipy load only on use


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "workbench").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
    assert "workbench_widgets" in listed and (ROOT / "widgets" / "__init__.py").exists()


def test_no_reference_to_shared_folder():
    needle = "/".join(["..", "shared"])  # spelled so this file does not match itself
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    bad = [f for f in tracked if not f.startswith(".ci/") and (ROOT / f).is_file() and f.endswith((".py", ".toml", ".md", ".ipynb", "Makefile"))
           and needle in (ROOT / f).read_text(errors="ignore")]
    assert not bad, bad


# The public API: `from workbench import <name>`. Module paths below it are private detail.
PUBLIC = [
    "ActivationDiff", "ActivationStats", "AttributionShift", "CalibrationShift", "Candidate", "Case", "CaseError",
    "Columns", "Config", "Context", "DependencyAudit", "Diagnosis", "Estimate", "Evidence", "FeatureDrift",
    "FeatureIsolation", "FeatureSlices", "GrainChoice", "GuardReport", "LabelDelay", "LabelShift", "Lineage",
    "MetricVerdict", "Mitigation", "MonitorResult", "Node", "Onset", "QualitySeries", "Reliability", "RootCause",
    "SegmentOnset", "ServedSide", "ServingConsistency", "Simulation", "Simulator", "SliceDeltas", "SliceSearch", "Snapshot",
    "SnapshotDiff", "SnapshotError", "SnapshotSwap", "SnapshotTimeline", "Tree", "UnexplainedShift", "Validation", "Window",
    "WorkbenchError", "attribution_shift", "audit_dependencies", "build_model", "calibration_shift", "choose_grain",
    "compare_activations", "default_batch", "default_holdout", "default_tree", "detect_onset", "detect_segment_onset",
    "diagnose", "diff_state_dicts", "estimate_unlabeled", "feature_by_slice", "feature_drift", "feature_timeline",
    "find_slices", "guard", "isolate_features", "label_delay", "label_shift", "last_good_snapshot", "load_model",
    "load_plugins", "load_state_dict", "measure_windows", "open_case", "permutation_shap", "quality_between",
    "quality_series", "read_config", "read_lineage", "read_snapshot_index", "register", "reliability",
    "render_report", "served_side_by_side", "serving_consistency", "slice_deltas", "snapshot_swap", "snapshot_timeline", "trace_activations",
    "training_skew", "unexplained_shift", "unit_importance", "validate_snapshot", "write_report",
]


def test_public_namespace_is_pinned_and_every_name_resolves():
    import workbench

    assert workbench.__all__ == sorted(PUBLIC), sorted(set(workbench.__all__) ^ set(PUBLIC))
    for name in PUBLIC:
        obj = getattr(workbench, name)
        assert (obj is not None and getattr(obj, "__name__", name) in (name, type(obj).__name__)) or callable(obj), name
    assert set(dir(workbench)) >= set(PUBLIC)


def test_subpackage_namespaces_resolve():
    import importlib

    for pkg in ("workbench.case", "workbench.data", "workbench.model", "workbench.rca", "workbench.report", "workbench.lab",
                "workbench.sample"):
        module = importlib.import_module(pkg)
        missing = [n for n in module.__all__ if getattr(module, n, None) is None]
        assert not missing, (pkg, missing)


def _module_name(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Every import between workbench modules, imports inside functions included (TYPE_CHECKING blocks are not run)."""
    files = sorted((ROOT / "workbench").rglob("*.py"))
    modules = {_module_name(p) for p in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        me = _module_name(path)
        tree = ast.parse(path.read_text())
        skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                for b in node.body for n in ast.walk(b)}
        out = set()
        for node in ast.walk(tree):
            if id(node) in skip or not isinstance(node, (ast.Import, ast.ImportFrom)) or getattr(node, "level", 0):
                continue
            targets = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [f"{node.module}.{a.name}" for a in node.names] + [node.module or ""]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != me:
                    out.add(t)
        graph[me] = out
    return graph


def test_no_import_cycles():
    graph = _import_graph()
    cycles = []

    def reach(start, node, seen):
        for nxt in graph.get(node, ()):
            if nxt == start:
                return True
            if nxt not in seen:
                seen.add(nxt)
                if reach(start, nxt, seen):
                    return True
        return False

    for module in graph:
        if reach(module, module, set()):
            cycles.append(module)
    assert not cycles, f"modules on an import cycle: {sorted(cycles)}"


def test_help_and_info_import_no_torch():
    code = ("import sys, contextlib, io\n"
            "from workbench.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "    main(['--help'])\n"
            "after_help = 'torch' in sys.modules\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['info', 'sample_data/cases/control', '-q'])\n"
            "print(after_help, 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.split() == ["False", "False"], out


def test_a_reader_that_leaves_the_pipe_early_gets_no_traceback():
    """`workbench info CASE | head -1`: the reader closes the pipe before the output is written; the command ends with
    141 (the exit of a process the pipe's signal ended) and says nothing on stderr. Before, a BrokenPipeError
    traceback, exit 1."""
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "info", "sample_data/cases/control", "-q"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command writes a line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141 and "Traceback" not in err and err == "", err


def test_a_broken_socket_is_not_taken_for_a_reader_that_left():
    """A review's case: any BrokenPipeError ended the command with 141 and nothing said, a database's or a cluster's
    socket breaking mid-run included. Only stdout's own reader leaving is; anything else is raised."""
    import argparse

    import pytest

    from workbench.cli import dispatch

    def run(_args: argparse.Namespace) -> int:
        raise BrokenPipeError(32, "Broken pipe (a socket to the database)")

    with pytest.raises(BrokenPipeError, match="socket to the database"):
        dispatch(argparse.Namespace(run=run))
