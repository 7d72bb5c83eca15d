"""Sample cases: simulated ads click-through traffic with injected incidents.

``generate_case`` writes a complete case (see the case format) whose
``truth.json`` names the injected root cause, so diagnoses can be scored
against a known answer. ``python -m workbench.sample.build_all`` regenerates
the committed set under ``sample_data/cases/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench._lazy import lazy_namespace

__all__ = ["INCIDENTS", "ColumnNames", "add_cli", "generate_case"]

_EXPORTS = {
    "INCIDENTS": "workbench.sample.incidents",
    "ColumnNames": "workbench.sample.columns",
    "add_cli": "workbench.sample.cli",
    "generate_case": "workbench.sample.generate",
}

if TYPE_CHECKING:
    from workbench.sample.cli import add_cli
    from workbench.sample.columns import ColumnNames
    from workbench.sample.generate import generate_case
    from workbench.sample.incidents import INCIDENTS

__getattr__, __dir__ = lazy_namespace("workbench.sample", _EXPORTS, __all__)
