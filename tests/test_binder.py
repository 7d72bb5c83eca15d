"""Binder: the environment binder/ describes resolves, holds what the workbench needs, and is the one the tests run.

What a Binder build does is ``pip install -r binder/requirements.txt`` then ``binder/postBuild``
(``pip install --no-deps -e .`` and the sample cases). The fast test proves, without
installing anything:

* pip's resolver accepts the pins on this platform, from a clean slate
  (``pip install --dry-run --ignore-installed --report``), and torch resolves to the CPU
  build ``make setup`` uses;
* the resolved set satisfies every runtime dependency ``pyproject.toml`` declares (postBuild
  installs the workbench with ``--no-deps``, so nothing else would bring them in);
* every pin is the version installed in this test environment, so the quickstart that
  ``tests/test_notebooks.py`` runs in a real kernel here is the quickstart Binder runs;
* ``postBuild`` is valid bash and its sample step runs.

It takes about 45 s (the resolver reading package metadata) where building the fresh
environment took about 220 s. That full build is still here, run with
``WORKBENCH_BINDER_FULL=1``: do it when the pins change.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version

import nbformat
import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.conftest import ROOT, SAMPLES

BINDER = ROOT / "binder"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    pins = {}
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"binder/requirements.txt: pin {req.name} with ==, not {spec}"
            pins[_norm(req.name)] = spec.version
    return pins


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> dict[str, str]:
    """What ``pip install -r binder/requirements.txt`` would install into an empty environment: name -> version."""
    report = tmp_path_factory.mktemp("binder") / "report.json"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
                          "-r", str(BINDER / "requirements.txt")], capture_output=True, text=True, timeout=1200)
    assert pip.returncode == 0, pip.stderr[-3000:]
    return {_norm(i["metadata"]["name"]): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}


def test_binder_pins_resolve_with_the_cpu_torch(resolved):
    assert resolved["torch"].startswith("2.13.0")
    assert all(name in resolved for name in _pins())


def test_the_resolved_set_holds_every_runtime_dependency(resolved):
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    unmet = [d for d in declared if not (r := Requirement(d)).specifier.contains(resolved.get(_norm(r.name), "0"), prereleases=True)]
    assert not unmet, f"binder/requirements.txt does not bring {unmet} (postBuild installs the workbench with --no-deps)"


def test_binder_pins_are_the_versions_the_tests_run_on():
    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    differ = {name: (pin, have) for name, pin in _pins().items()
              if (have := installed(name)) is None or not SpecifierSet(f"=={pin}").contains(have)}  # 2.13.0+cpu is ==2.13.0
    assert not differ, f"binder/requirements.txt pins differ from this environment (pin, installed): {differ}"


def test_post_build_is_valid_and_its_sample_step_runs():
    script = (BINDER / "postBuild").read_text()
    subprocess.run(["bash", "-n", str(BINDER / "postBuild")], check=True)
    assert "pip install --no-deps -e ." in script
    step = re.search(r"^python -m (workbench\.sample\.build_all.*)$", script, re.M)
    assert step, "postBuild no longer prepares the sample cases"
    subprocess.run([sys.executable, "-m", *step.group(1).split()], cwd=ROOT, check=True, capture_output=True, timeout=600)


@pytest.mark.skipif(not os.environ.get("WORKBENCH_BINDER_FULL"), reason="the full Binder build (~220 s): WORKBENCH_BINDER_FULL=1")
def test_binder_files_install_and_run_the_quickstart(tmp_path):
    venv = tmp_path / "binder-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(BINDER / "requirements.txt")],
                         capture_output=True, text=True, env=env, timeout=1200)
    assert pip.returncode == 0, pip.stderr[-3000:]
    post = subprocess.run(["bash", str(BINDER / "postBuild")], capture_output=True, text=True, env=env, timeout=600)
    assert post.returncode == 0, post.stderr[-3000:]
    # the environment really is the fresh one: workbench resolves inside it
    where = subprocess.run([str(py), "-c", "import workbench, torch; print(torch.__version__)"], capture_output=True, text=True,
                           env=env, check=True).stdout
    assert where.startswith("2.13.0")
    out = tmp_path / "quickstart.out.ipynb"
    case = SAMPLES / "upstream_break"
    run = subprocess.run([str(py), "-m", "papermill", str(ROOT / "notebooks" / "quickstart.ipynb"), str(out), "-p", "case", str(case),
                          "--cwd", str(tmp_path), "-k", "python3", "--no-progress-bar"],
                         capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    text = "\n".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []))
    assert json.loads((case / "truth.json").read_text())["target"] in text
