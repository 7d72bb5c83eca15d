"""The same investigation as a web app: ``panel serve app.py`` where app.py is ``investigate(case).servable()``."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.ui


def test_panel_serve_app(panel_server, new_page, shots, expect):
    page = new_page(1300, 1000)
    page.goto(panel_server.url)
    # The page comes up at once; the diagnosis runs after it loaded, behind a progress bar and line.
    expect(page.get_by_text("ads ctr sample").first).to_be_visible(timeout=60_000)
    progress = page.get_by_text(re.compile(r"^(diagnosing|preparing|drawing|waiting for the page)"))
    if progress.count():  # unless the (small) sample case was already done by the time we look
        page.screenshot(path=str(shots / "serve-0-progress.png"), full_page=True)
    expect(page.get_by_text("root cause: upstream: table:ad_catalog")).to_be_visible(timeout=180_000)
    expect(page.get_by_text("Loading")).to_have_count(0)
    page.wait_for_timeout(700)
    page.screenshot(path=str(shots / "serve-1-tree.png"), full_page=True)

    page.get_by_role("button", name="▶ feature_side").click()
    page.get_by_role("button", name="▶ lineage").click()
    expect(page.get_by_text("Which upstream node feeds the broken features, and as few others as possible?")).to_be_visible()
    page.locator(".bk-tab").filter(has_text="Slices").click()
    page.get_by_role("button", name="platform=web", exact=True).click()
    expect(page.get_by_text("Selected platform=web")).to_be_visible()
    page.locator(".bk-tab").filter(has_text="Quality timeline").click()
    expect(page.locator(".bk-panel-models-markup-HTML").filter(has_text="slice platform=web").first).to_be_visible()
    assert not page.js_errors, page.js_errors
    page.wait_for_timeout(700)
    page.screenshot(path=str(shots / "serve-2-timeline-with-slice.png"), full_page=True)
