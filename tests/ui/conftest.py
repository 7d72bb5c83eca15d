"""Fixtures for the browser tests: a throw-away JupyterLab and ``panel serve`` on a free loopback port,
and Playwright pages in Debian's Chromium (``/usr/bin/chromium``; ``make browser`` installs it).

Nothing here downloads a browser: Playwright only drives the system Chromium. On CI
(``CI`` set) a missing Chromium or Playwright fails the run instead of skipping it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.ui.notebook import CASE, ROOT, write_app, write_notebook

HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# The flags this machine needs (closed network, root, no GPU); Playwright adds its own --user-data-dir.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "ui-test-token"
SHOTS = Path(os.environ.get("SCREENSHOT_DIR", HERE / "screens"))
# Every request not to our own loopback server is aborted at once (Panel asks a CDN for a few CSS files).
NON_LOCAL = re.compile(r"^(https?|wss?)://(?!127\.0\.0\.1[:/]|localhost[:/])")
# JupyterLab says "idle" while the toolbar still says "No Kernel"; Run All then opens a modal. Wait for both.
KERNEL_READY = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const name = panel && panel.querySelector('[data-jp-item-name=kernelName]');
  const state = panel && panel.querySelector('.jp-Notebook-ExecutionIndicator');
  const kernel = name ? name.textContent.trim() : '';
  return kernel !== '' && kernel !== 'No Kernel' && state && state.getAttribute('data-status') === 'idle';
}"""
_no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _missing(msg: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(msg)  # on CI a missing browser must never turn into a green skip
    pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with _no_proxy.open(url, timeout=60) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} not up after {timeout}s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    """Stop a server we started, by its own PID (JupyterLab shuts its kernels down on SIGTERM)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYDEVD_DISABLE_FILE_VALIDATION="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.fixture(scope="session")
def sample_case() -> Path:
    if not (CASE / "predictions.parquet").exists():
        pytest.fail(f"sample case {CASE} is missing: run `make samples`")
    return CASE


# ---------------------------------------------------------------- servers
@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory, sample_case):
    """JupyterLab on 127.0.0.1:<free port>, token auth, isolated config, settings and workspaces."""
    home = tmp_path_factory.mktemp("jlab")
    root = home / "notebooks"
    root.mkdir()
    write_notebook(root / "investigate.ipynb", sample_case)
    settings = home / "user-settings"
    for rel, value in {
        # every cell in the DOM (no virtual scrolling), so queries see all outputs
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
        # no news toast, no update check (closed network)
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"checkForUpdates": False, "fetchNews": "false"},
    }.items():
        f = settings / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    port = free_port()
    env = _env(JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={home / 'workspaces'}"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")  # jupyter refuses to run as root without it
    log = home / "jupyter.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/api/status?token={TOKEN}", proc, 90, log)
            yield SimpleNamespace(url=f"http://127.0.0.1:{port}", token=TOKEN, root=root, log=log, pid=proc.pid)
        finally:
            stop(proc)


@pytest.fixture(scope="session")
def panel_server(tmp_path_factory, sample_case):
    """``panel serve app.py`` on 127.0.0.1:<free port>, where app.py is ``investigate(case).servable()``."""
    home = tmp_path_factory.mktemp("panel")
    script = write_app(home / "app.py", sample_case)
    port = free_port()
    cmd = [sys.executable, "-m", "panel", "serve", str(script), "--address", "127.0.0.1", "--port", str(port),
           "--allow-websocket-origin", f"127.0.0.1:{port}"]
    log = home / "panel.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=home, env=_env())
        try:
            wait_for_http(f"http://127.0.0.1:{port}/app", proc, 180, log)
            yield SimpleNamespace(url=f"http://127.0.0.1:{port}/app", log=log, pid=proc.pid)
        finally:
            stop(proc)


# ---------------------------------------------------------------- browser
@pytest.fixture(scope="package")  # torn down with tests/ui: a live sync_playwright holds a running event loop
def chromium_browser():
    if not Path(CHROMIUM).exists():
        _missing(f"{CHROMIUM} is missing: apt-get update && apt-get install -y chromium fonts-dejavu-core (or `make browser`)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _missing("playwright is not installed: pip install -e '.[dev]'")
    expect.set_options(timeout=30_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def expect(chromium_browser):
    """Playwright's ``expect`` (imported here, so a missing Playwright skips, or fails on CI, instead of
    breaking collection)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture
def new_page(chromium_browser, request):
    """Factory: a fresh browser context and page; a screenshot is saved when the test fails."""
    contexts = []

    def make(width: int = 1400, height: int = 1800):
        ctx = chromium_browser.new_context(viewport={"width": width, "height": height})
        ctx.route(NON_LOCAL, lambda route: route.abort())
        contexts.append(ctx)
        page = ctx.new_page()
        page.js_errors = []
        page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
        return page

    yield make
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        SHOTS.mkdir(parents=True, exist_ok=True)
        for i, ctx in enumerate(contexts):
            for j, pg in enumerate(ctx.pages):
                pg.screenshot(path=str(SHOTS / f"FAILED-{request.node.name}-{i}{j}.png"), full_page=True)
    for ctx in contexts:
        ctx.close()


@pytest.fixture
def lab_page(jupyter_lab, new_page):
    """JupyterLab open on investigate.ipynb with its kernel idle."""
    page = new_page()
    page.goto(f"{jupyter_lab.url}/lab/tree/investigate.ipynb?token={jupyter_lab.token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
    page.wait_for_function(KERNEL_READY, timeout=90_000)
    return page


@pytest.fixture
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS
