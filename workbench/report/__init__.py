"""The shareable HTML report: one self-contained file drawn from a diagnosis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench._lazy import lazy_namespace

__all__ = [
    "render_report",
    "write_report",
]

_EXPORTS = {
    "render_report": "workbench.report.html",
    "write_report": "workbench.report.html",
}

if TYPE_CHECKING:
    from workbench.report.html import render_report, write_report

__getattr__, __dir__ = lazy_namespace("workbench.report", _EXPORTS, __all__)
