"""The served workbench (``panel serve widgets/serve.py``) in a real browser: two users at once, and the rules.

Session A opens an incident whose (plugin) check raises, under a root where model code
is not allowed; session B, at the same time, opens a healthy case. A shows the cause,
the ERROR of its own failing check and the model checks skipped for the operator's
reason; B renders as if A did not exist. Then path escapes (``..``, an absolute path
outside the roots, a symlink out) are refused with a message saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

from tests.conftest import SAMPLES, write_small_case
from tests.ui.conftest import ROOT, _env, free_port, stop, wait_for_http

pytestmark = pytest.mark.ui

PLUGIN = '''"""A check that raises on the case named 'explodes' (a stand-in for any bug in a check)."""
from workbench import Evidence, Node, register


def exploding(ctx):
    if ctx.case.root.name == "explodes":
        raise RuntimeError("this check exploded on purpose")
    return Evidence("exploding", "pass", 0.0, "Nothing exploded here.")


register(Node("exploding", "Does the test check explode?", exploding), parent="prediction_quality")
'''


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("served")
    uploads, trusted, outside = home / "uploads", home / "trusted", home / "outside"
    for d in (uploads, trusted, outside):
        d.mkdir()
    shutil.copytree(SAMPLES / "upstream_break", uploads / "explodes")
    write_small_case(uploads / "healthy")
    write_small_case(trusted / "own")
    write_small_case(outside / "secret")
    (uploads / "shortcut").symlink_to(outside / "secret")
    (home / "plugins").mkdir()
    (home / "plugins" / "exploding_check.py").write_text(PLUGIN)
    port = free_port()
    cmd = [sys.executable, "-m", "panel", "serve", str(ROOT / "widgets" / "serve.py"), "--address", "127.0.0.1", "--port", str(port),
           "--allow-websocket-origin", f"127.0.0.1:{port}", "--args", "--root", str(uploads), "--model-root", str(trusted)]
    env = _env(WORKBENCH_PLUGINS="exploding_check")
    env["PYTHONPATH"] = os.pathsep.join([str(home / "plugins"), env["PYTHONPATH"]])
    log = home / "panel.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=home, env=env)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/serve", proc, 180, log)
            yield SimpleNamespace(url=f"http://127.0.0.1:{port}/serve", log=log, outside=outside)
        finally:
            stop(proc)


def test_two_sessions_at_once_one_with_a_failing_check(served, new_page, shots, expect):
    a, b = new_page(1300, 1400), new_page(1300, 1400)
    a.goto(f"{served.url}?case=uploads/explodes")
    b.goto(f"{served.url}?case=uploads/healthy")
    expect(a.get_by_text("root cause: upstream: table:ad_catalog")).to_be_visible(timeout=240_000)
    expect(b.get_by_text("no regression detected", exact=True)).to_be_visible(timeout=240_000)
    for page in (a, b):
        expect(page.get_by_text("Loading")).to_have_count(0)
    # A: its own check's failure is an ERROR in its tree, and model.py was not run (the root does not allow it)
    expect(a.get_by_role("button", name="exploding", exact=True)).to_be_visible()
    expect(a.locator(".wb-app").get_by_text("ERROR", exact=True).first).to_be_visible()
    a.get_by_role("button", name="exploding", exact=True).click()
    expect(a.get_by_text("this check exploded on purpose").first).to_be_visible()
    a.get_by_role("button", name="snapshot_validation", exact=True).click()
    expect(a.get_by_text("model.py is not run here").first).to_be_visible()
    # B: untouched by A's failure
    expect(b.locator(".wb-app").get_by_text("ERROR", exact=True)).to_have_count(0)
    expect(b.get_by_text("exploded")).to_have_count(0)
    a.wait_for_timeout(700)
    a.screenshot(path=str(shots / "serve-safety-1-session-a.png"), full_page=True)
    b.screenshot(path=str(shots / "serve-safety-2-session-b.png"), full_page=True)
    assert not a.js_errors and not b.js_errors, (a.js_errors, b.js_errors)


@pytest.mark.parametrize(("path", "says"), [
    ("uploads/../trusted/own", "'..' is not allowed"),
    ("{outside}", "is outside the case roots"),
    ("uploads/shortcut", "a symlink leads out of it"),
    ("elsewhere/case", "does not start with a root name"),
], ids=["dotdot", "absolute", "symlink", "no-root"])
def test_path_escapes_are_refused_with_a_reason(served, new_page, shots, expect, path, says):
    page = new_page(1100, 500)
    page.goto(served.url)
    box = page.get_by_placeholder("uploads/<case directory>")
    expect(box).to_be_visible(timeout=60_000)
    box.fill(path.format(outside=served.outside / "secret"))
    page.get_by_role("button", name="Open").click()
    expect(page.get_by_text(says)).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Cannot open")).to_be_visible()
    expect(page.locator(".wb-app")).to_have_count(0)  # nothing was opened
    if path.startswith("uploads/.."):
        page.screenshot(path=str(shots / "serve-safety-3-refused.png"), full_page=True)
