"""The workbench's look: one stylesheet and the small HTML fragments (badges, cards) the views share.

Panel renders each component in its own shadow root, so the stylesheet is passed
to every HTML pane that uses these classes (``stylesheets=[CSS]``) instead of
being injected once into the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

__all__ = ["CSS", "badge", "card", "kv"]

# One palette for the whole workbench (the HTML report uses the same verdict colours).
VERDICT_COLORS = {"fail": ("#fee2e2", "#991b1b"), "warn": ("#fef3c7", "#92400e"), "pass": ("#dcfce7", "#166534"),
                  "skip": ("#f3f4f6", "#4b5563"), "info": ("#e0f2fe", "#075985"), "error": ("#111827", "#fecaca")}
BLUE, RED, GREEN, AMBER, GRAY = "#2563eb", "#dc2626", "#059669", "#d97706", "#9ca3af"
BASELINE_COLOR, INCIDENT_COLOR = "#3b82f6", "#ef4444"
PLOT_OPTS = {"toolbar": "above", "fontscale": 1.0, "default_tools": ["pan", "wheel_zoom", "save", "reset"]}

CSS = """
:host { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #111827; }
.wb-badge { display:inline-block; min-width:40px; text-align:center; border-radius:4px; padding:1px 6px;
            font-size:11px; font-weight:600; text-transform:uppercase; letter-spacing:.02em; }
.wb-muted { color:#6b7280; font-size:12px; }
.wb-h { font-size:15px; font-weight:600; margin:2px 0 4px 0; }
.wb-summary { font-size:13px; line-height:1.4; margin:4px 0; }
.wb-card { border:1px solid #e5e7eb; border-left:4px solid #dc2626; background:#fef2f2; border-radius:6px;
           padding:8px 12px; margin:2px 0; font-size:13px; line-height:1.45; }
.wb-card.minor { border-left-color:#9ca3af; background:#f9fafb; }
.wb-card.none { border-left-color:#059669; background:#f0fdf4; }
.wb-headline { font-size:14px; padding:8px 12px; background:#eff6ff; border-radius:8px; line-height:1.45; }
.wb-conf { display:inline-block; height:7px; background:#dc2626; border-radius:3px; vertical-align:middle; margin-right:4px; }
.wb-kv { font-size:12px; color:#374151; } .wb-kv b { color:#111827; }
pre.wb-pre { font-size:11.5px; white-space:pre-wrap; background:#f9fafb; border:1px solid #e5e7eb; border-radius:4px;
             padding:6px 8px; max-height:260px; overflow:auto; margin:4px 0; }
details summary { cursor:pointer; color:#2563eb; font-size:12px; }
.wb-choice-accepted { color:#166534; font-weight:600; }
.wb-choice-rejected { color:#991b1b; font-weight:600; text-decoration:line-through; }
"""

# Buttons of the tree: left-aligned text, no heavy fill (Bokeh's default button is centred).
TREE_BUTTON_CSS = """
:host { width: 100%; }
.bk-btn { text-align:left; font-size:13px; padding:3px 8px; white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
.bk-btn-light { background:transparent; border-color:transparent; }
.bk-btn-light:hover { background:#eff6ff; border-color:#bfdbfe; }
"""
ONPATH_BUTTON_CSS = TREE_BUTTON_CSS + ".bk-btn-light { border-left:3px solid #2563eb; background:#eff6ff; font-weight:600; }"

STATUS_CSS = """
:host { font-size:12px; color:#2563eb; }
.wb-spin { display:inline-block; width:10px; height:10px; border:2px solid #bfdbfe; border-top-color:#2563eb;
           border-radius:50%; animation: wbspin .8s linear infinite; vertical-align:-1px; }
@keyframes wbspin { to { transform: rotate(360deg); } }
"""


def badge(verdict: str) -> str:
    bg, fg = VERDICT_COLORS.get(verdict, VERDICT_COLORS["info"])
    label = "ERROR" if verdict == "error" else verdict
    return f"<span class='wb-badge' style='background:{bg};color:{fg}'>{escape(label)}</span>"


def card(title: str, body: str, *, minor: bool = False, kind: str = "") -> str:
    cls = "wb-card" + (" minor" if minor else "") + (f" {kind}" if kind else "")
    return f"<div class='{cls}'><b>{title}</b><br>{body}</div>"


def kv(pairs: Mapping[str, object]) -> str:
    return "<span class='wb-kv'>" + " &nbsp;·&nbsp; ".join(f"{escape(k)} <b>{escape(str(v))}</b>" for k, v in pairs.items()) + "</span>"
