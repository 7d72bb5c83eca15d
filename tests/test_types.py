"""mypy over workbench/ and widgets/ (as workbench_widgets) with the [tool.mypy] settings in pyproject.toml.

The folder widgets/ imports as workbench_widgets, and mypy names modules after folders: the config puts
.mypy_cache/pkgroot on mypy_path, and this test keeps a link workbench_widgets -> widgets there (see the
comment in [tool.mypy]). mypy's incremental cache (.mypy_cache, git-ignored) makes a warm run a few seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

CACHE = ROOT / ".mypy_cache"


def _link_widgets_as_workbench_widgets() -> None:
    pkgroot = CACHE / "pkgroot"
    pkgroot.mkdir(parents=True, exist_ok=True)
    link = pkgroot / "workbench_widgets"
    target = os.path.relpath(ROOT / "widgets", pkgroot)
    if link.is_symlink() and os.readlink(link) == target:
        return
    tmp = pkgroot / f".workbench_widgets.{os.getpid()}"  # replace atomically: another run may be reading it
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target, target_is_directory=True)
    tmp.replace(link)


def test_mypy_is_clean() -> None:
    _link_widgets_as_workbench_widgets()
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(CACHE)],
        cwd=ROOT, capture_output=True, text=True, check=False)
    out = result.stdout + result.stderr
    for shown in (str(CACHE / "pkgroot" / "workbench_widgets"), os.path.join(".mypy_cache", "pkgroot", "workbench_widgets")):
        out = out.replace(shown, "widgets")  # name the files as they are in the repo
    if result.returncode != 0:
        pytest.fail(f"mypy found errors:\n{out}", pytrace=False)
