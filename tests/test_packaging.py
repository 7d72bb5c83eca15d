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
            "import workbench, workbench.case, workbench.cli\n"
            "import workbench.lab\n"
            "print(sorted(m for m in ('torch', 'polars', 'scipy') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['polars']"  # workbench.case needs polars; torch and scipy load only on use


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
