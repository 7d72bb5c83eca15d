"""investigate() in JupyterLab 4, in headless Chromium: the notebook a user writes, clicked through.

One test, in the order a person works: run the notebook; follow the recommended path
of the decision tree to the root cause and accept it; select a slice and see the
other views follow; save; restart the kernel and run again — the investigation
reopens where it stood (the state travels in the notebook's outputs). Screenshots of
every view are written to tests/ui/screens/.
"""

from __future__ import annotations

import json
import time

import pytest

from workbench_widgets._persist import MIME

pytestmark = pytest.mark.ui

ALL_CELLS_DONE = """() => {
  const prompts = [...document.querySelectorAll(
      '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt')];
  return prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]/.test(p.textContent.trim()));
}"""


def run_all_cells(page, timeout_ms: int = 240_000) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_for_function(ALL_CELLS_DONE, timeout=timeout_ms)


def app_shot(page, shots, name: str) -> None:
    """A screenshot of the app's output (the cell output area), after Bokeh finished drawing."""
    page.wait_for_timeout(700)
    page.locator(".jp-OutputArea-output").filter(has=page.locator(".bk-panel-models-layout-Column")).first.screenshot(
        path=str(shots / name))


def saved_state(path) -> dict | None:
    try:
        nb = json.loads(path.read_text())
    except ValueError:  # caught while JupyterLab writes it
        return None
    found = None
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            found = out.get("data", {}).get(MIME, found)
    return found


def test_investigate_in_jupyterlab(lab_page, jupyter_lab, shots, expect):
    page = lab_page
    t0 = time.monotonic()
    run_all_cells(page)
    # --- it rendered: the header names the root cause; no placeholder, no error, no raw repr
    expect(page.get_by_text("root cause: upstream: table:ad_catalog")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("Loading widget")).to_have_count(0)
    expect(page.get_by_text("Error displaying")).to_have_count(0)
    expect(page.get_by_text("Investigator(")).to_have_count(0)
    expect(page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")).to_have_count(0)
    assert page.locator("canvas").count() >= 3  # Bokeh drew the plots
    print(f"notebook ran and rendered in {time.monotonic() - t0:.0f} s")
    app_shot(page, shots, "lab-1-tree.png")

    # --- follow the recommended path to the root cause
    page.get_by_role("button", name="▶ feature_side").click()
    expect(page.get_by_text("Did a feature lose coverage, change scale, go stale or drift?")).to_be_visible()
    page.get_by_role("button", name="▶ lineage").click()
    question = page.get_by_text("Which upstream node feeds the broken features, and as few others as possible?")
    expect(question).to_be_visible()
    expect(page.get_by_text("Did a feature lose coverage, change scale, go stale or drift?")).to_be_hidden()
    # accept the hypothesis the lineage check raised (the switch inside the open node)
    detail = page.locator(".wb-detail-lineage")
    detail.get_by_role("button", name="accept").click()
    record = page.locator(".wb-record")
    expect(record).to_contain_text("2 node(s) opened; 1 accepted, 0 rejected")
    detail.locator("textarea").fill("paged the ad_catalog owners")
    detail.locator("textarea").blur()
    expect(record).to_contain_text("1 note(s)")
    app_shot(page, shots, "lab-2-root-cause.png")

    # --- select a slice; the timeline follows
    page.locator(".bk-tab").filter(has_text="Slices").click()
    page.get_by_role("button", name="platform=web", exact=True).click()
    expect(page.get_by_text("Selected platform=web")).to_be_visible()
    expect(record).to_contain_text("slice platform=web")
    app_shot(page, shots, "lab-3-slices.png")
    page.locator(".bk-tab").filter(has_text="Quality timeline").click()
    expect(page.locator(".bk-panel-models-markup-HTML").filter(has_text="slice platform=web").first).to_be_visible()
    app_shot(page, shots, "lab-4-timeline.png")
    for tab, text, name in (("Features", "Features ranked by severity", "lab-5-features.png"),
                            ("Snapshots", "validator:", None),
                            ("Lineage", "Click a feature to open it in the Features tab", "lab-7-lineage.png")):
        page.locator(".bk-tab").filter(has_text=tab).click()
        expect(page.get_by_text(text).first).to_be_visible()
        if name:
            app_shot(page, shots, name)
        else:
            app_shot(page, shots, "lab-6-snapshots.png")
    assert not page.js_errors, page.js_errors

    # no callback failed anywhere (a kernel-side error would print a traceback into the output)
    expect(page.get_by_text("Traceback (most recent call last)")).to_have_count(0)

    # --- save: the notebook file holds the investigation's state
    page.locator(".bk-tab").filter(has_text="Decision tree").click()
    page.get_by_role("menuitem", name="File", exact=True).click()
    page.get_by_role("menuitem", name="Save Notebook", exact=False).first.click()
    path = jupyter_lab.root / "investigate.ipynb"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (saved_state(path) or {}).get("slice") != "platform=web":
        time.sleep(0.5)
    state = saved_state(path)
    assert state["choices"] == {"upstream:table:ad_catalog": "accepted"}
    assert state["notes"] == {"lineage": "paged the ad_catalog owners"} and state["node"] == "lineage"

    # --- reopen: restart the kernel, run again; it stands where it was left
    page.get_by_role("menuitem", name="Kernel", exact=True).click()
    page.get_by_role("menuitem", name="Restart Kernel and Run All Cells…").click()
    page.get_by_role("button", name="Confirm Kernel Restart").or_(page.get_by_role("button", name="Restart", exact=True)).click()
    expect(page.locator(".wb-record")).to_contain_text("restored from this notebook", timeout=240_000)
    page.wait_for_function(ALL_CELLS_DONE, timeout=120_000)
    expect(page.get_by_text("Which upstream node feeds the broken features, and as few others as possible?")).to_be_visible()
    expect(page.locator(".wb-detail-lineage textarea")).to_have_value("paged the ad_catalog owners")
    expect(page.locator(".wb-record")).to_contain_text("1 accepted, 0 rejected; 1 note(s); slice platform=web")
    expect(page.get_by_text("Traceback (most recent call last)")).to_have_count(0)
    assert not page.js_errors, page.js_errors
    app_shot(page, shots, "lab-8-reopened.png")
