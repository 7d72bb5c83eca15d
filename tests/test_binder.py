"""Binder: a fresh virtual environment built only from binder/ runs the quickstart and names the cause."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat

from tests.conftest import ROOT, SAMPLES


def test_binder_files_install_and_run_the_quickstart(tmp_path):
    venv = tmp_path / "binder-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(ROOT / "binder" / "requirements.txt")],
                         capture_output=True, text=True, env=env, timeout=1200)
    assert pip.returncode == 0, pip.stderr[-3000:]
    post = subprocess.run(["bash", str(ROOT / "binder" / "postBuild")], capture_output=True, text=True, env=env, timeout=600)
    assert post.returncode == 0, post.stderr[-3000:]
    # the environment really is the fresh one: workbench resolves inside it
    where = subprocess.run([str(py), "-c", "import workbench, torch; print(torch.__version__)"], capture_output=True, text=True,
                           env=env, check=True).stdout
    assert where.startswith("2.13.0")
    out = tmp_path / "quickstart.out.ipynb"
    case = SAMPLES / "upstream_break"
    run = subprocess.run([str(py), "-m", "papermill", str(ROOT / "notebooks" / "quickstart.ipynb"), str(out), "-p", "case", str(case),
                          "--cwd", str(ROOT / "notebooks"), "-k", "python3", "--no-progress-bar"],
                         capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    text = "\n".join(o.get("text", "") for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []))
    assert json.loads((case / "truth.json").read_text())["target"] in text
